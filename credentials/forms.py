"""Dashboard forms every credential kind shares: runtime policy, rotation overlap, name and description."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from credentials import policy

OVERLAP_CHOICES = [
    (0, _("None — the old key stops now")),
    (1, _("1 hour")),
    (24, _("24 hours (recommended)")),
    (72, _("3 days")),
    (168, _("7 days")),
]


class RuntimePolicyForm(forms.Form):
    """A credential's runtime policy as people type it: CIDRs one per line, the limit as N/S."""

    allowed_ips = forms.CharField(
        label=_("Allowed IP networks"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=_("IPv4/IPv6 CIDRs, one per line or comma-separated, at most 100. Empty: any address."),
    )
    rate_limit = forms.CharField(
        label=_("Rate limit"),
        required=False,
        max_length=24,
        help_text=_("N/S: at most N requests per S seconds, e.g. 100/60. Empty: no limit."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("allowed_ips", "rate_limit"):  # after the fields of a create form
            self.fields[name] = self.fields.pop(name)

    def clean_allowed_ips(self):
        return _policy_field(policy.clean_allowed_ips, self.cleaned_data["allowed_ips"])

    def clean_rate_limit(self):
        return clean_rate_limit_text(self.cleaned_data["rate_limit"])

    @classmethod
    def initial_for(cls, credential) -> dict:
        return {
            "allowed_ips": "\n".join(credential.allowed_ips or []),
            "rate_limit": policy.format_rate_limit(credential.rate_limit),
        }


def clean_rate_limit_text(value: str) -> dict[str, int] | None:
    """Return a rate limit typed as N/S (empty: none), or raise the form error."""
    value = value.strip()
    return _policy_field(policy.parse_rate_limit, value) if value else None


def _policy_field(clean, value):
    try:
        return clean(value)
    except ValidationError as exc:
        raise forms.ValidationError(next(iter(exc.message_dict.values()))) from None


class CredentialEditForm(forms.Form):
    """Rename or describe a credential of either kind (its secret and scopes stay as they are)."""

    name = forms.CharField(label=_("Name"), max_length=100)
    description = forms.CharField(
        label=_("Description"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("What uses it and why: reviewers read this."),
    )


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
