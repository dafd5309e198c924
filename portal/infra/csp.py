"""django-csp's middleware, with the policy header built once per process when nothing varies it.

django-csp builds the `Content-Security-Policy` (and report-only) header from settings on
every response: it copies the configured directives, merges per-view overrides, sorts and
joins them — about a tenth of a key-verified request (docs/performance.md "Third pass"). On
a response no view decorated (`@csp_update`, `@csp_replace`, `@csp`, `@csp_exempt`) and for a
request whose nonce was never asked for — every JSON answer of the machine endpoints — that
header depends on settings alone, so it is built once and reused (rebuilt when a test changes
the CSP settings). Anything else goes through django-csp's own `process_response` unchanged.

The lean middleware chain (`portal.infra.lean.EQUIVALENTS`) builds this class in place of
`csp.middleware.CSPMiddleware`; `tests/portal/test_lean_equivalents.py` checks both answer
the same headers.
"""

from __future__ import annotations

import http.client as http_client

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as StockCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

#: Response attributes through which django-csp's decorators vary the policy of one response.
_PER_RESPONSE = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_exempt",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt_ro",
)

#: (header, setting, report_only) of the two policies, in django-csp's order.
_POLICIES = (
    (HEADER, "CONTENT_SECURITY_POLICY", False),
    (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY", True),
)

#: header -> (policy, excluded path prefixes), as built from the current settings.
_built: dict[str, tuple[str, tuple[str, ...]]] = {}

_DEBUG_EXEMPT = (http_client.INTERNAL_SERVER_ERROR, http_client.NOT_FOUND)


@receiver(setting_changed, dispatch_uid="portal.infra.csp.forget")
def _forget(*, setting: str, **_kwargs) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _built.clear()


def _policy(header: str, setting: str, report_only: bool) -> tuple[str, tuple[str, ...]]:
    built = _built.get(header)
    if built is None:
        configured = getattr(settings, setting, None) or {}
        prefixes = tuple(configured.get("EXCLUDE_URL_PREFIXES", None) or ())
        built = _built[header] = (build_policy(report_only=report_only), prefixes)
    return built


class CSPMiddleware(StockCSPMiddleware):
    """`csp.middleware.CSPMiddleware`, answering the same headers; see the module docstring."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or any(
            getattr(response, name, None) is not None for name in _PER_RESPONSE
        ):
            return super().process_response(request, response)
        if response.status_code in _DEBUG_EXEMPT and settings.DEBUG:
            return response
        for header, setting, report_only in _POLICIES:
            policy, prefixes = _policy(header, setting, report_only)
            if policy and header not in response and not request.path_info.startswith(prefixes):
                response[header] = policy
        # As django-csp: asking for the nonce once the header is written is an error.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
