"""Admin pages' forms as a browser would post them back, for tests that change them."""

from __future__ import annotations

import json


def organization_form(page, organization) -> tuple[dict, dict[int, str]]:
    """Return the page's POST data as it stands, and each membership's form prefix by its pk.

    Change a membership with `data[f"{prefixes[pk]}-role"] = …` (or `-DELETE`), then post `data`.
    """
    data = {"slug": organization.slug, "name": organization.name, "mfa_required": organization.mfa_required}
    prefixes = _add_inlines(page, data)
    return data, prefixes


def _add_inlines(page, data: dict) -> dict[int, str]:
    """Add the page's inline formsets to `data` as they stand; return each saved row's prefix by pk."""
    prefixes: dict[int, str] = {}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name, field in management.fields.items():
            data[f"{management.prefix}-{name}"] = management.initial.get(name, field.initial)
        for form in inline.formset.forms:
            for name in form.fields:
                value = form.initial.get(name)
                data[f"{form.prefix}-{name}"] = getattr(value, "pk", value) if value is not None else ""
            data[f"{form.prefix}-id"] = form.instance.pk or ""
            if form.instance.pk:
                prefixes[form.instance.pk] = form.prefix
    return prefixes


def change_form_data(page) -> dict:
    """Return an admin change page's form (and inlines) as a browser would post it unchanged."""
    form = page.context["adminform"].form
    data: dict = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is None:
            data[name] = ""
        elif isinstance(value, list | tuple):
            data[name] = [getattr(v, "pk", v) for v in value]
        elif isinstance(value, dict):
            data[name] = json.dumps(value)
        else:
            data[name] = value
    _add_inlines(page, data)
    return data


def is_step_up_redirect(response) -> bool:
    return response.status_code == 302 and "reauthenticate" in response.get("Location", "")
