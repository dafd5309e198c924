"""Small helpers shared by the REST API views."""

from __future__ import annotations

from rest_framework.response import Response


def no_store(response: Response) -> Response:
    """Mark a response that carries a secret (or a verdict on one) as never to be cached."""
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response
