"""How dashboard pages report a service's outcome as a flash message (form errors: `credentials.forms`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest


def flash_outcome(
    request: HttpRequest, change: Callable[[], Any], success: str | Callable[[Any], str]
) -> None:
    """Run a change and flash `success` (or `success(result)`), or the service's refusal as an error."""
    try:
        result = change()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, success(result) if callable(success) else success)
