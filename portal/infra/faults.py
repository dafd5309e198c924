"""Database outages answer 503 in each endpoint's own error format, never a hang or an HTML 500."""

from __future__ import annotations

import contextlib
import logging
import sys

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse
from django.views import defaults

from portal.infra.errors import machine_error
from portal.infra.observability import loggable_path
from portal.infra.responses import no_store

logger = logging.getLogger(__name__)

#: Seconds a client should wait before retrying while the database is unavailable.
RETRY_AFTER_SECONDS = 5

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable · Identity Portal</title></head>
<body><main><h1>Temporarily unavailable</h1>
<p>Identity Portal cannot reach its database right now. Please try again in a few seconds.</p>
</main></body></html>
"""


def is_database_outage(exc: BaseException | None) -> bool:
    """Return whether `exc` means the database cannot be reached (not a bug in a query)."""
    return isinstance(exc, OperationalError | InterfaceError)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """Return the 503 for a database outage, shaped like the endpoint's other errors.

    OAuth endpoints answer RFC 6749-style JSON (`temporarily_unavailable`), the REST API and
    the `/.well-known/` documents a DRF-style `{"detail": …}` (portal.infra.errors), everything
    else a plain page that needs neither the database nor a template.
    """
    response = machine_error(
        request,
        503,
        oauth_error="temporarily_unavailable",
        detail="The service is temporarily unavailable; retry shortly.",
        code="unavailable",
    )
    if response is None:
        response = HttpResponse(_PAGE, status=503, content_type="text/html; charset=utf-8")
    no_store(response)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _forget_broken_connections() -> None:
    # A connection that failed mid-request must not be reused: the next request reconnects,
    # which is how the portal recovers on its own once the database is back.
    for connection in connections.all(initialized_only=True):
        # Closing a dead connection may fail again; it is dropped either way.
        with contextlib.suppress(Exception):
            connection.close_if_unusable_or_obsolete()


class DatabaseOutageMiddleware:
    """Turn a database OperationalError/InterfaceError raised by a view into a quick 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not is_database_outage(exc):
            return None
        logger.warning(
            "database unavailable during %s %s: %s",
            request.method,
            loggable_path(request),
            type(exc).__name__,
        )
        _forget_broken_connections()
        return unavailable_response(request)


def server_error(request: HttpRequest) -> HttpResponse:
    """`handler500`: a database outage raised outside a view (in a middleware) is still a 503.

    Any other error gets JSON on a machine path, else Django's own 500 page (templates/500.html
    when present); never details.
    """
    exc = sys.exc_info()[1]
    if is_database_outage(exc):
        _forget_broken_connections()
        return unavailable_response(request)
    shaped = machine_error(
        request, 500, oauth_error="server_error", detail="A server error occurred.", code="error"
    )
    return shaped or defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """`handler400`: a request Django refused before any view (a foreign Host header, too many
    form fields), in the endpoint family's format."""
    shaped = machine_error(
        request, 400, oauth_error="invalid_request", detail="The request is malformed.", code="bad_request"
    )
    return shaped or defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """`handler404`: an unknown path (or a 404 raised outside DRF) in the endpoint family's format."""
    shaped = machine_error(request, 404, oauth_error="invalid_request", detail="Not found.", code="not_found")
    return shaped or defaults.page_not_found(request, exception)
