"""A lean middleware path for machine endpoints: no browser layers on requests made by machines.

Services call `/oauth/*`, `/api/v1/whoami`, `/api/v1/keys/verify` and the `/.well-known/`
documents on every request, with a credential in a header. Such a request needs no session,
CSRF, messages, allauth, MFA-enrolment or static-file layer: there is no session to load, no
form to protect and no page to render. `MachinePathMiddleware` sits first in `MIDDLEWARE`
and sends such a request through a second chain built from the same `MIDDLEWARE` list
without the browser-only layers (`PORTAL_BROWSER_ONLY_MIDDLEWARE`, marked beside each layer
in settings), so everything else —
metrics before and after, security headers (HSTS, nosniff, CSP, X-Frame-Options), the body
limit, the request id, the access log, the database-outage answers and CommonMiddleware's
`ALLOWED_HOSTS` check (a foreign `Host` is still 400) — runs exactly as on
the full path, in the same order (docs/performance.md measures what this buys).

Which requests: every request under `/oauth/` and `/.well-known/`, cookies or not. No view
there reads a session or a user or needs CSRF (the protocol endpoints are `csrf_exempt` and
authenticate the client from the request itself), so the browser layers could only hurt: a
browser tab's idle session turned `POST /oauth/token` into a 302 to the login page, a staff
session without a second factor into a 302 to `/accounts/2fa/`, and the answer carried
`Set-Cookie`. The exact paths (`MACHINE_PATHS`) take the lean chain only without any cookie;
with one they take the full chain, where `portal.account_security.middleware` spares them
its MFA gate. Any other path takes the full chain unchanged.

A middleware added to `MIDDLEWARE` later runs on both paths unless settings mark it `browser`.

`EQUIVALENTS`: a layer of the lean chain may be built from a drop-in subclass that gives the
same answers for less work (django-csp's policy built once: `portal.infra.csp`; django-prometheus's
labelled children looked up once: `portal.infra.prometheus`); the list of layers and their
order stay those of `MIDDLEWARE` (tests/portal/test_lean_equivalents.py).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

#: This middleware's own dotted path (it must come first in MIDDLEWARE).
SELF = "portal.infra.lean.MachinePathMiddleware"

#: Layers built from a drop-in subclass on the lean chain: same answers, less work per request.
EQUIVALENTS = {
    "csp.middleware.CSPMiddleware": "portal.infra.csp.CSPMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware": (
        "portal.infra.prometheus.PrometheusAfterMiddleware"
    ),
}

#: Machine endpoints: exact paths (lean without a cookie), and path prefixes (always lean).
MACHINE_PATHS = frozenset({"/api/v1/whoami", "/api/v1/keys/verify"})
MACHINE_PREFIXES = ("/oauth/", "/.well-known/")


def is_machine_request(request: HttpRequest) -> bool:
    """Return whether the request takes the lean chain: any under a machine prefix, or a
    cookie-less one to a machine path."""
    path = request.path_info
    if path.startswith(MACHINE_PREFIXES):
        return True
    return path in MACHINE_PATHS and not request.META.get("HTTP_COOKIE")


def lean_middleware() -> list[str]:
    """Return MIDDLEWARE without this selector and the browser-only layers, in the same order."""
    browser_only = settings.PORTAL_BROWSER_ONLY_MIDDLEWARE
    return [path for path in settings.MIDDLEWARE if path != SELF and path not in browser_only]


class _LeanHandler(BaseHandler):
    """A handler whose middleware chain is the lean list (synchronous, as under gunicorn's WSGI)."""

    def __init__(self, middleware: list[str]) -> None:
        super().__init__()
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response)
        # The same construction as BaseHandler.load_middleware, for a given list, sync only.
        for path in reversed(middleware):
            factory = import_string(EQUIVALENTS.get(path, path))
            try:
                instance = factory(handler)
            except MiddlewareNotUsed:
                continue
            if instance is None:
                raise ImproperlyConfigured(f"Middleware factory {path} returned None.")
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


class MachinePathMiddleware:
    """Send machine requests through the lean chain; everything else goes on as usual."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        if settings.MIDDLEWARE and settings.MIDDLEWARE[0] != SELF:
            raise ImproperlyConfigured(f"{SELF} must come first in MIDDLEWARE.")
        self.get_response = get_response
        self.lean = _LeanHandler(lean_middleware())._middleware_chain

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_machine_request(request):
            return self.lean(request)
        return self.get_response(request)
