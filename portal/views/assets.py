"""Addresses browsers ask for on their own, whatever the page links to."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static


def favicon(request: HttpRequest) -> HttpResponse:
    """Redirect `/favicon.ico` to the portal's icon (resolved per request: the manifest may be hashed)."""
    return HttpResponsePermanentRedirect(static("portal/favicon.svg"))
