"""JSON typed in by people: nesting too deep, or a lone surrogate, is refused like any bad JSON."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.utils.translation import gettext_lazy as _


def encodable(value) -> bool:
    """Return whether every string in parsed JSON (keys included) is encodable text.

    `"\\ud800"` is valid JSON but no text: echoed in an error message or a re-rendered form, it
    makes the UTF-8 response fail, a 500.
    """
    if isinstance(value, str):
        if value.isascii():
            return True
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(encodable(key) and encodable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(encodable(item) for item in value)
    return True


class JSONFormField(forms.JSONField):
    """Django's JSON form field, with JSON nested too deeply or holding a lone surrogate as a form
    error: Django catches only `JSONDecodeError`, and "[[[…" raises `RecursionError`, a 500."""

    default_error_messages = {
        "too_deep": _("Enter a valid JSON: it is nested too deeply."),
        "surrogate": _("Enter a valid JSON: a string holds a lone surrogate (\\uD800-\\uDFFF)."),
    }

    def to_python(self, value):
        try:
            converted = super().to_python(value)
        except RecursionError:
            raise ValidationError(self.error_messages["too_deep"], code="invalid") from None
        if not encodable(converted):
            raise ValidationError(self.error_messages["surrogate"], code="invalid")
        return converted

    def bound_data(self, data, initial):
        # The form shown again with its error holds what was typed, as for any invalid JSON.
        try:
            value = super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)
        return value if encodable(value) else InvalidJSONInput(data)
