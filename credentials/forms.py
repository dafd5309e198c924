"""Dashboard forms every credential kind shares: runtime policy, rotation overlap, name and description."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from credentials import policy
from credentials.names import CredentialNameField
from credentials.overlap import OVERLAP_HOURS, overlap_choices

#: What an overlap field offers unless told otherwise: 24 hours, the recommended overlap.
DEFAULT_OVERLAP_HOURS = 24

#: Every overlap a rotation takes, in hours (the presets are some of them; staff may choose any).
_ANY_OVERLAP = frozenset(str(hours) for hours in range(max(OVERLAP_HOURS) + 1))


class OverlapHoursField(forms.TypedChoiceField):
    """How long the old key or secret keeps working after a rotation, in hours (credentials.overlap).

    `old` names what stops ("key", "secret"); 24 hours is preselected. The presets are offered, plus
    the form's initial value when it is not one (`OverlapDefaultMixin`); any whole number of hours
    from 0 to 168 is accepted, as the REST API and the services take it, so a page showing the
    organisation's default (5 hours, say) can send it back even to a form built without it.
    """

    def __init__(self, *, old: str = "key", **kwargs):
        self.old = old
        kwargs.setdefault("choices", overlap_choices(old))
        kwargs.setdefault("initial", DEFAULT_OVERLAP_HOURS)
        super().__init__(coerce=int, **kwargs)

    def offer(self, hours) -> None:
        """Offer `hours` (the organisation's default overlap) beside the presets when it is not one."""
        self.choices = overlap_choices(self.old, extra=hours if isinstance(hours, int) else None)

    def valid_value(self, value) -> bool:
        return str(value) in _ANY_OVERLAP


class OverlapDefaultMixin:
    """Make a form's overlap fields offer their initial value (the policy's default, 0–168 hours).

    Without it, a default that is not a preset would have no option: the page would preselect none and
    the browser would send the first one, 0 ("the old key stops now").
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if isinstance(field, OverlapHoursField):
                field.offer(self.get_initial_for_field(field, name))


class RateLimitTextField(forms.CharField):
    """A rate limit as people type it, N/S (at most N requests per S seconds); optional.

    It cleans to the stored `{"requests", "per_seconds"}`, or None when left empty.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 24)
        super().__init__(**kwargs)

    def clean(self, value) -> dict[str, int] | None:
        value = super().clean(value)
        return _policy_field(policy.parse_rate_limit, value) if value else None


class RuntimePolicyForm(forms.Form):
    """A credential's runtime policy as people type it: CIDRs one per line, the limit as N/S."""

    allowed_ips = forms.CharField(
        label=_("Allowed IP networks"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=_("IPv4/IPv6 CIDRs, one per line or comma-separated, at most 100. Empty: any address."),
    )
    rate_limit = RateLimitTextField(
        label=_("Rate limit"),
        help_text=_("N/S: at most N requests per S seconds, e.g. 100/60. Empty: no limit."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("allowed_ips", "rate_limit"):  # after the fields of a create form
            self.fields[name] = self.fields.pop(name)

    def clean_allowed_ips(self):
        return _policy_field(policy.clean_allowed_ips, self.cleaned_data["allowed_ips"])

    @classmethod
    def initial_for(cls, credential) -> dict:
        return {
            "allowed_ips": "\n".join(credential.allowed_ips or []),
            "rate_limit": policy.format_rate_limit(credential.rate_limit),
        }


def _policy_field(clean, value):
    try:
        return clean(value)
    except ValidationError as exc:
        raise forms.ValidationError(next(iter(exc.message_dict.values()))) from None


class CredentialEditForm(forms.Form):
    """Rename or describe a credential of either kind (its secret and scopes stay as they are)."""

    name = CredentialNameField(label=_("Name"), max_length=100)
    description = forms.CharField(
        label=_("Description"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("What uses it and why: reviewers read this."),
    )
