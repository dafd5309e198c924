"""Errors shaped like the endpoint family that was called, for answers no view gave.

A view answers its own errors: RFC 6749 JSON on `/oauth/*`, DRF's `{"detail", "code"}` on
`/api/*`. Some answers come from elsewhere — an unknown path (404), a bad request Django refuses
before any view (400: a foreign Host header, too many form fields), an unhandled exception (500),
the request bounds (413, 400), a database outage (503) — and must still be JSON where a
machine is calling. `machine_error` says what that JSON is; a page path gets None (HTML).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from portal.infra.responses import no_store

#: Path prefixes machines call, and the error shape each answers in.
OAUTH_PREFIX = "/oauth/"
JSON_PREFIXES = ("/api/", "/.well-known/")


def is_machine_path(path: str) -> bool:
    """Return whether `path` belongs to an endpoint family that answers JSON errors."""
    return path.startswith(OAUTH_PREFIX) or path.startswith(JSON_PREFIXES)


def machine_error(
    request: HttpRequest, status: int, *, oauth_error: str, detail: str, code: str | None
) -> HttpResponse | None:
    """Return the JSON error for a machine path (`/oauth/`: RFC 6749 §5.2 with no-store; `/api/`
    and `/.well-known/`: `{"detail", "code"}`), or None for any other path (a page answers)."""
    path = request.path
    if path.startswith(OAUTH_PREFIX):
        body: dict[str, str] = {"error": oauth_error, "error_description": detail}
    elif path.startswith(JSON_PREFIXES):
        body = {"detail": detail, "code": code or "error"}
    else:
        return None
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    return no_store(response) if path.startswith(OAUTH_PREFIX) else response


def require_get(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Like Django's `require_GET` (GET and HEAD only), answering other methods with a 405 in the
    endpoint family's JSON (`method_not_allowed`) instead of an empty page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            return view(request, *args, **kwargs)
        response = machine_error(
            request, 405, oauth_error="invalid_request", detail="Use GET.", code="method_not_allowed"
        ) or HttpResponseNotAllowed(["GET", "HEAD"])
        response["Allow"] = "GET, HEAD"
        return response

    return wrapper
