"""DRF authentication by API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`, never a URL query."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from credentials import policy, usage
from credentials.api_keys import keys
from credentials.api_keys.verification import api_key_record_use, api_key_verify, hot_keys
from credentials.insight import recorder as insight
from portal.infra import hotcache, ratelimit
from portal.infra.net import client_ip
from portal.principal import INVALID_CREDENTIAL, MAX_CREDENTIAL_LENGTH, Principal

_QUERY_PARAMETERS = ("api_key", "apikey", "key", "access_token", "token")

#: Rate-limit scope of failed API-key verifications, counted per client IP.
FAILURE_SCOPE = "api-key-failures:ip"


def failure_checks(request) -> list[ratelimit.Check]:
    """Return the rate-limit identities a failed key verification counts against."""
    return [
        (FAILURE_SCOPE, client_ip(request), ratelimit.per_minute("PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE"))
    ]


def refuse_if_throttled(request) -> None:
    """Raise DRF's `Throttled` (429 + Retry-After) while this IP has too many failed verifications."""
    wait = ratelimit.blocked(failure_checks(request))
    if wait is not None:
        raise exceptions.Throttled(wait=wait)


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticate a machine by API key and return `(Principal, Principal)`.

    A bearer value that is not shaped like an API key is left to the next authentication
    class (an access token, say). A key in the URL query is refused: URLs end up in logs.
    Failures count against the client IP; past the limit the answer is 429.
    """

    def authenticate(self, request: Request) -> tuple[Principal, Principal] | None:
        raw = self._presented_key(request)
        if raw is None:
            return None
        django_request = request._request
        checks = failure_checks(django_request)
        counters = ratelimit.hot_keys(checks)
        # One cache round trip: the failure counter, the key's snapshot and its last-used marker;
        # none while this process read them less than PORTAL_API_KEY_MEMO_SECONDS ago.
        with hotcache.prefetched([*counters, *(hot_keys(raw) if raw else [])], recent=True):
            refuse_if_throttled(django_request)
            verification = api_key_verify(raw) if raw else None
            if verification is None or not verification.valid:
                # A failure is answered on the shared counter as it is now, not a recent read of it.
                hotcache.refresh(counters)
                refuse_if_throttled(django_request)
                ratelimit.hit_all(checks)
                if verification is not None:
                    usage.record_api_key(verification)
                raise exceptions.AuthenticationFailed(INVALID_CREDENTIAL)
            ip = client_ip(django_request)
            refused = policy.api_key_refusal(verification.key, ip)
            if refused is not None:
                usage.record_api_key(verification, refused.get_codes())
                raise refused
            principal = verification.principal()
            # The scopes this API needs (and the key holds) are counted for "scopes never used".
            scopes, enough = insight.scopes_needed(request, principal.scopes)
            usage.record_api_key(verification, None if enough else "insufficient_scope", scopes=scopes)
            if enough:  # "last used" is the last successful use, not a refusal for scope
                api_key_record_use(verification, ip=ip)
        return principal, principal

    @staticmethod
    def _presented_key(request: Request) -> str | None:
        """Return the presented key, "" for a refused presentation, None if no key was presented."""
        params = request.query_params
        if params and any(
            name.lower() in _QUERY_PARAMETERS
            # A whole key anywhere, in a name or a value (`?<key>`, `?authorization=Bearer <key>`); a
            # short `ipk_live_<key id>` display prefix is a fine search.
            or keys.holds_whole_key(name)
            or any(keys.holds_whole_key(value) for value in values)
            for name, values in params.lists()
        ):
            return ""
        header_key = request.META.get("HTTP_X_API_KEY")
        if header_key is not None:
            return header_key.strip() if len(header_key) <= MAX_CREDENTIAL_LENGTH else ""
        header = get_authorization_header(request)
        if len(header) > MAX_CREDENTIAL_LENGTH:
            return "" if header[:7].lower() == b"bearer " else None
        auth = header.split()
        if not auth or auth[0].lower() != b"bearer":
            return None
        if len(auth) != 2:
            return ""
        try:
            raw = auth[1].decode("ascii")
        except UnicodeDecodeError:
            return ""
        return raw if keys.looks_like_api_key(raw) else None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
