"""How dashboard pages report a service's outcome: a flash message, or errors on the form."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse


def refusal_text(exc: ValidationError) -> str:
    """Return a service's refusal as one line for a flash message or a 403 page."""
    return " ".join(exc.messages)


def form_errors_text(form: forms.Form) -> str:
    """Return a form's errors as one line for a flash message, each after its field's label.

    For the small forms posted from a page that shows no form again (a decision, a rotation's
    overlap, a cut-over's settings): the line names what was refused.
    """
    return " ".join(
        f"{form[name].label}: {' '.join(errors)}" if name in form.fields else " ".join(errors)
        for name, errors in form.errors.items()
    )


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


def add_service_errors(
    form: forms.Form, exc: ValidationError, *, field_for: dict[str, str] | None = None
) -> None:
    """Show a service's refusal on the form: each field's errors on the field (or the one the form asks
    for under another name, `field_for`), the rest above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.error_dict.items():
        field = (field_for or {}).get(field, field)
        form.add_error(field if field in form.fields else None, errors)


def filter_refused(form: forms.Form) -> bool:
    """Whether a list's filter form was sent with a value it cannot apply.

    The list then shows nothing, answered 400 with the errors on the form: leaving out only the
    filter it cannot read would list more than was asked for, under a form that looks applied.
    """
    return form.is_bound and not form.is_valid()


def invalid_filter_response(form: forms.Form) -> HttpResponse | None:
    """Return a plain-text 400 naming the errors of a bound, invalid filter form (else None).

    For downloads (CSV exports): a filter the form cannot apply must not widen the export.
    """
    if not filter_refused(form):
        return None
    errors = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in form.errors.items())
    return HttpResponse(f"Invalid filter: {errors}\n", status=400, content_type="text/plain; charset=utf-8")
