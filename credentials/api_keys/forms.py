"""Dashboard forms for API keys."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from credentials.api_keys.models import CUTOVER_QUIET_PERIODS, Environment
from credentials.forms import OverlapDefaultMixin, OverlapHoursField, RuntimePolicyForm
from credentials.governance.models import CredentialState
from credentials.lifetimes import MAX_LIFETIME_DAYS
from credentials.names import CredentialNameField
from credentials.selectors import scope_catalogue
from portal.submissions import OnceForm


class ApiKeyCreateForm(OnceForm, RuntimePolicyForm):
    name = CredentialNameField(
        label=_("Name"), max_length=100, help_text=_("What uses this key, e.g. 'billing export job'.")
    )
    owner = forms.ModelChoiceField(
        label=_("Owner"), queryset=None, help_text=_("The member accountable for this key.")
    )
    scopes = forms.ModelMultipleChoiceField(
        label=_("Scopes"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        to_field_name="name",
        help_text=_("Grant only what the integration needs."),
    )
    environment = forms.ChoiceField(label=_("Environment"), choices=Environment.choices)
    expires_in_days = forms.IntegerField(
        label=_("Expires in (days)"),
        min_value=1,
        max_value=MAX_LIFETIME_DAYS,
        required=False,
        help_text=_(
            "At most 3650 (ten years) or your organisation's maximum. Leave empty for a key that does not "
            "expire (review it regularly)."
        ),
    )

    def __init__(self, *args, owners, default_environment: str, owner_role: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = owners
        self.fields["owner"].label_from_instance = lambda u: u.email
        # A member creating for themself is offered only the scopes a member's key may hold
        # (portal.authz); a manager choosing another owner gets a field error if it does not fit.
        self.fields["scopes"].queryset = scope_catalogue(for_role=owner_role)
        self.fields["scopes"].label_from_instance = lambda s: (
            f"{s.name} — {s.description}" if s.description else s.name
        )
        self.fields["environment"].initial = default_environment


class ApiKeyRotateForm(OverlapDefaultMixin, OnceForm):
    """How long the old key keeps working; the organisation's default is preselected, preset or not."""

    overlap_hours = OverlapHoursField(
        label=_("Keep the old key working for"),
        help_text=_("Long enough to deploy the new key everywhere the old one is used."),
    )


class ApiKeyRevokeForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        help_text=_("Recorded in the audit log, e.g. 'leaked in a build log'."),
    )


class ApiKeyFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any status")), *CredentialState.choices]
    )
    environment = forms.ChoiceField(
        label=_("Environment"), required=False, choices=[("", _("Any environment")), *Environment.choices]
    )
    owner = forms.ModelChoiceField(label=_("Owner"), required=False, queryset=None, empty_label=_("Anyone"))

    def __init__(self, *args, owners, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = owners
        self.fields["owner"].label_from_instance = lambda u: u.email


class CutoverForm(forms.Form):
    """The quiet period of a moved key's cut-over, and the opt-in automatic revoke after it."""

    quiet_hours = forms.TypedChoiceField(
        label=_("Quiet period"),
        choices=CUTOVER_QUIET_PERIODS,
        coerce=int,
        help_text=_("How long the key must go unused before it may be revoked."),
    )
    auto_revoke = forms.BooleanField(
        label=_("Revoke automatically after the quiet period"),
        required=False,
        help_text=_("Once the application is active and the key has gone unused for the quiet period."),
    )
