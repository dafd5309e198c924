"""Django's CommonMiddleware, with a JSON refusal instead of APPEND_SLASH's redirect for machine writes.

APPEND_SLASH answers a request to `…/revoke` (no trailing slash, where `…/revoke/` exists) with a
301 to the slashed URL. For GET and HEAD that helps. For a POST, PUT, PATCH or DELETE it loses the
write: the 301 has an empty body, and a client that follows it re-sends a GET (RFC 9110 §15.4.2);
with DEBUG on Django raises a RuntimeError instead (an HTML 500). On a machine path (`/api/`,
`/oauth/`, `/.well-known/`) such a write is answered 404 in the endpoint family's JSON
(`trailing_slash`), naming the URL to use; pages keep Django's behaviour.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware

from portal.infra.errors import machine_error

#: Methods APPEND_SLASH may redirect harmlessly: the follow-up GET is what was asked.
_SAFE = frozenset({"GET", "HEAD"})


class CommonMiddleware(DjangoCommonMiddleware):
    """Django's CommonMiddleware; a machine write to a URL that lacks its trailing slash gets a JSON 404."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # Only a 404 asks anything more than Django does: every other answer goes straight on.
        if (
            response.status_code == 404
            and request.method not in _SAFE
            and self.should_redirect_with_slash(request)
        ):
            refusal = machine_error(
                request,
                404,
                oauth_error="invalid_request",
                detail=f"No such URL: use {request.path}/ (with a trailing slash).",
                code="trailing_slash",
            )
            if refusal is not None:
                refusal.headers["Content-Length"] = str(len(refusal.content))
                return refusal
        return super().process_response(request, response)
