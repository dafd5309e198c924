"""The organisation admin page's form as a browser would post it back, for tests that change it."""

from __future__ import annotations


def organization_form(page, organization) -> tuple[dict, dict[int, str]]:
    """Return the page's POST data as it stands, and each membership's form prefix by its pk.

    Change a membership with `data[f"{prefixes[pk]}-role"] = …` (or `-DELETE`), then post `data`.
    """
    data = {"slug": organization.slug, "name": organization.name, "mfa_required": organization.mfa_required}
    prefixes: dict[int, str] = {}
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name, field in management.fields.items():
            data[f"{management.prefix}-{name}"] = management.initial.get(name, field.initial)
        for form in formset.formset.forms:
            for name in form.fields:
                value = form.initial.get(name)
                data[f"{form.prefix}-{name}"] = getattr(value, "pk", value) if value is not None else ""
            data[f"{form.prefix}-id"] = form.instance.pk or ""
            if form.instance.pk:
                prefixes[form.instance.pk] = form.prefix
    return data, prefixes
