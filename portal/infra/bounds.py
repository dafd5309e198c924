"""Refuse requests no view should see: bodies over the configured size, NUL bytes in the URL."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from portal.infra.errors import machine_error

_TOO_LARGE = "The request body is too large."
_NUL = "The URL holds a NUL character."


def _refuse(request: HttpRequest, status: int, message: str, code: str) -> HttpResponse:
    """Return an error in the format of the endpoint that was called (portal.infra.errors)."""
    shaped = machine_error(request, status, oauth_error="invalid_request", detail=message, code=code)
    return shaped or HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RequestBoundsMiddleware:
    """Answer 413 to a body declared larger than `DATA_UPLOAD_MAX_MEMORY_SIZE`, and 400 to a
    path or query string holding a NUL character.

    Django enforces the size limit only where it parses forms itself; DRF's JSON parser reads
    the stream whole. Checking the declared length here bounds every endpoint at once.
    PostgreSQL refuses NUL in text, so a NUL reaching a lookup or a filter (`?search=%00`, a
    key id in a path) would be a 500; no URL of this portal can use one (form and JSON fields
    refuse it in their own validation).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return _refuse(request, 413, _TOO_LARGE, "too_large")
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return _refuse(request, 400, _NUL, "url_nul")
        return self.get_response(request)
