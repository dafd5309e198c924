"""Template helper for the error summary of `portal/_form_fields.html`."""

from __future__ import annotations

from django import template
from django.forms import BoundField, Form

register = template.Library()


@register.filter
def invalid_fields(form: Form) -> list[BoundField]:
    """Return the form's visible fields that have errors, in their order on the page."""
    return [field for field in form.visible_fields() if field.errors]
