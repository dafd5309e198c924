"""How dashboard pages report a service's outcome: a flash message, or the refusal on the form."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest


def flash_outcome(request: HttpRequest, change: Callable[[], Any], success: Callable[[Any], str]) -> None:
    """Run a change and flash `success(result)`, or the service's refusal as an error message."""
    try:
        result = change()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, success(result))


def add_service_errors(
    form: forms.Form, exc: ValidationError, renamed: Mapping[str, str] | None = None
) -> None:
    """Show a service's refusal on the form: on the field it names (as `renamed` maps it), else on top."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.error_dict.items():
        field = (renamed or {}).get(field, field)
        form.add_error(field if field in form.fields else None, errors)
