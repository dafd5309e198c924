"""How dashboard pages report a service's outcome as a flash message (form errors: `credentials.forms`)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest


def refusal_text(exc: ValidationError) -> str:
    """Return a service's refusal as one line for a flash message or a 403 page."""
    return " ".join(exc.messages)


def flash_outcome(
    request: HttpRequest,
    change: Callable[[], Any],
    success: str | Callable[[Any], str],
    *,
    forbidden: Collection[str] = (),
) -> bool:
    """Run a change and flash `success` (or `success(result)`), or the service's refusal as an error.

    A refusal whose code is in `forbidden` (such as `not_owner`) is a 403 page instead.
    Return whether the change went through.
    """
    try:
        result = change()
    except ValidationError as exc:
        if getattr(exc, "code", None) in forbidden:
            raise PermissionDenied(refusal_text(exc)) from None
        messages.error(request, refusal_text(exc))
        return False
    messages.success(request, success(result) if callable(success) else success)
    return True
