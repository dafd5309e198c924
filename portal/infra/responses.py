"""One rule for answers that must never be stored: the secret pages, the OAuth answers, refusals."""

from __future__ import annotations

from typing import TypeVar

from django.http import HttpResponseBase

R = TypeVar("R", bound=HttpResponseBase)


def no_store(response: R) -> R:
    """Mark a response as never to be stored by a cache or kept in the browser's history cache.

    `Cache-Control: no-store` (RFC 9111 §5.2.2.5; RFC 6749 §5.1 for token answers) and
    `Pragma: no-cache` for HTTP/1.0 caches. Used for every answer that carries a secret or a
    verdict on one, and for error answers that must not be replayed from a cache.
    """
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response
