"""Refuse request bodies over the configured size before any view or parser reads them."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from portal.infra.responses import no_store

_MESSAGE = "The request body is too large."


def _too_large(request: HttpRequest) -> HttpResponse:
    """Return 413 in the format of the endpoint that was called."""
    if request.path.startswith("/oauth/"):
        body = {"error": "invalid_request", "error_description": _MESSAGE}
        return no_store(HttpResponse(json.dumps(body), status=413, content_type="application/json"))
    if request.path.startswith("/api/"):
        return HttpResponse(json.dumps({"detail": _MESSAGE}), status=413, content_type="application/json")
    return HttpResponse(_MESSAGE, status=413, content_type="text/plain; charset=utf-8")


class RequestBodyLimitMiddleware:
    """Answer 413 to a body declared larger than `DATA_UPLOAD_MAX_MEMORY_SIZE`.

    Django enforces that limit only where it parses forms itself; DRF's JSON parser reads
    the stream whole. Checking the declared length here bounds every endpoint at once.
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
            return _too_large(request)
        return self.get_response(request)
