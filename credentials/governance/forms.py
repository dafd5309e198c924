"""Dashboard forms for governance: inventory filters, decisions, policy, reviews, scope requests, owners."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from credentials import policy
from credentials.forms import (
    OverlapDefaultMixin,
    OverlapHoursField,
    RateLimitTextField,
    RuntimePolicyForm,  # noqa: F401 - the governance views take it from here
)
from credentials.governance.inventory_usage import ATTENTION, SORT_LABELS
from credentials.governance.models import OrganizationPolicy
from credentials.governance.registry import all_kinds
from credentials.governance.selectors import FLAG_LABELS, STATUSES
from credentials.models import Scope
from credentials.selectors import scope_catalogue


def _scope_field(label, help_text="", required=False) -> forms.ModelMultipleChoiceField:
    field = forms.ModelMultipleChoiceField(
        label=label,
        queryset=scope_catalogue(),
        required=required,
        widget=forms.CheckboxSelectMultiple,
        to_field_name="name",
        help_text=help_text,
    )
    field.label_from_instance = lambda s: f"{s.name} — {s.description}" if s.description else s.name
    return field


class InventoryFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100, help_text=_("Name or id."))
    kind = forms.ChoiceField(
        label=_("Kind"),
        required=False,
        choices=[],  # every registered kind, filled in by __init__
    )
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("Any status")), *((s, s.capitalize()) for s in STATUSES)],
    )
    flag = forms.ChoiceField(label=_("Flag"), required=False, choices=[("", _("Any")), *FLAG_LABELS.items()])
    owner = forms.ModelChoiceField(label=_("Owner"), required=False, queryset=None, empty_label=_("Anyone"))
    scope = forms.CharField(label=_("Scope"), required=False, max_length=100)
    attention = forms.ChoiceField(
        label=_("Needs attention"), required=False, choices=[("", _("Any")), *ATTENTION.items()]
    )
    sort = forms.ChoiceField(label=_("Sort"), required=False, choices=list(SORT_LABELS.items()))

    def __init__(self, *args, owners, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [
            ("", _("Every kind")),
            *((kind.key, f"{kind.label} ({kind.lifecycle})") for kind in all_kinds()),
        ]
        self.fields["owner"].queryset = owners
        self.fields["owner"].label_from_instance = lambda u: u.email


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label=_("Decision"),
        choices=[("approve", _("Approve")), ("deny", _("Deny"))],
        widget=forms.HiddenInput,
    )
    comment = forms.CharField(label=_("Comment"), required=False, max_length=500)


class PolicyForm(OverlapDefaultMixin, forms.ModelForm):
    # The overlaps the rotation forms offer, plus the current default when staff chose another
    # (OverlapDefaultMixin): saving the page for another change keeps it.
    default_rotation_overlap_hours = OverlapHoursField(
        label=_("Default rotation overlap"),
        help_text=_("Preselected when someone rotates a key or a client secret."),
    )

    # Rate limits as people type them (N/S), like a credential's own (RuntimePolicyForm).
    default_rate_limit = RateLimitTextField(
        label=_("Default rate limit"),
        help_text=_(
            "N/S: given to a new API key or M2M application created without a limit, e.g. 100/60. "
            "Empty: none."
        ),
    )
    max_rate_limit = RateLimitTextField(
        label=_("Rate limit ceiling"),
        help_text=_(
            "N/S: no credential may average more than N requests per S seconds (its own limit is "
            "compared as a rate, so 10/1 allows 600/60 but not 1000/60). A new one without a limit "
            "gets the default, or else the ceiling. Empty: no ceiling. Existing credentials above "
            "it keep working; they are flagged in the inventory."
        ),
    )

    class Meta:
        model = OrganizationPolicy
        fields = [
            "approve_new_api_keys",
            "approve_new_m2m_apps",
            "approve_scope_increases",
            "api_key_max_lifetime_days",
            "client_secret_max_lifetime_days",
            "default_rotation_overlap_hours",
            "api_key_review_interval_days",
            "m2m_app_review_interval_days",
            "orphan_grace_days",
            "overdue_grace_days",
            "leaked_credential_action",
            "new_live_api_keys",
            "new_live_api_keys_max_days",
            "new_test_api_keys",
            "new_test_api_keys_max_days",
            "require_allowed_ips_for_live",
            "default_rate_limit",
            "max_rate_limit",
        ]
        widgets = {
            "leaked_credential_action": forms.RadioSelect,
            "new_live_api_keys": forms.RadioSelect,
            "new_test_api_keys": forms.RadioSelect,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The policy on kinds came later: a form posted without it (an older page, a script)
        # keeps the current rules rather than failing.
        for name in ("new_live_api_keys", "new_test_api_keys"):
            self.fields[name].required = False
        for name in ("default_rate_limit", "max_rate_limit"):
            self.initial[name] = policy.format_rate_limit(getattr(self.instance, name))

    def clean(self):
        cleaned = super().clean()
        for name in ("new_live_api_keys", "new_test_api_keys"):
            if not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class RecertifyForm(forms.Form):
    """The owner's review: keep every scope still needed (untick to narrow).

    `shown` carries the scopes the page listed, so the review removes only those unticked
    (`reviews.credential_recertify`): a scope granted after the page was read stays. A form sent
    without it (a page older than the field) is refused rather than read as "remove the rest".
    """

    shown = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, current_scopes: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.is_bound:
            # The choices are those the page showed; the service judges them against the scopes now.
            # Read before any field is cleaned, so only what can name a scope reaches the query: a NUL
            # is a DataError on PostgreSQL (a 500). `shown`'s own check then refuses the post.
            longest = Scope._meta.get_field("name").max_length
            listed = [
                name
                for name in str(self.data.get(self.add_prefix("shown"), "")).split()
                if "\x00" not in name and len(name) <= longest
            ]
        else:
            listed = list(current_scopes or [])
            self.fields["shown"].initial = " ".join(listed)
        field = _scope_field(
            _("Scopes still needed"), _("Untick a scope to remove it; a review cannot add scopes.")
        )
        field.queryset = field.queryset.filter(name__in=listed)
        field.initial = listed
        self.fields["scopes"] = field

    def clean_shown(self) -> list[str]:
        if self.add_prefix("shown") not in self.data:
            raise forms.ValidationError(
                _("This page was out of date. Review the scopes as they are now."), code="stale"
            )
        return self.cleaned_data["shown"].split()


class ScopeRequestForm(forms.Form):
    """The scopes a credential should hold. `shown` carries those the page listed as held, so
    what is sent is applied as a change to them (`edits.scope_change`): a scope granted after
    the page was read stays. A form sent without it (a script) sets the whole list."""

    scopes = _scope_field(_("Scopes"), _("The complete set of scopes it should hold."))
    shown = forms.CharField(widget=forms.HiddenInput, required=False)
    justification = forms.CharField(
        label=_("Justification"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Why the new scopes are needed (required when they need approval)."),
    )

    def __init__(self, *args, current_scopes: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.fields["shown"].initial = " ".join(current_scopes or [])

    def clean_shown(self) -> list[str] | None:
        if self.add_prefix("shown") not in self.data:
            return None
        return self.cleaned_data["shown"].split()


class ReassignForm(forms.Form):
    owner = forms.ModelChoiceField(label=_("New owner"), queryset=None)

    def __init__(self, *args, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = members
        self.fields["owner"].label_from_instance = lambda u: u.email


class JustificationField(forms.CharField):
    """The field the create forms gain when the policy asks for approval."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Justification"))
        kwargs.setdefault("max_length", 2000)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3}))
        kwargs.setdefault(
            "help_text",
            _("Why it is needed. An owner or admin approves it before any secret exists."),
        )
        super().__init__(**kwargs)
