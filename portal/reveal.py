"""The page that shows a new secret once (`templates/portal/_secret_reveal.html`), never stored."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.infra.responses import no_store


def secret_reveal(
    request: HttpRequest, template_name: str, context: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    """Render a page that holds a new secret; no cache and no back button may bring it back."""
    return no_store(render(request, template_name, context, status=status))
