"""Admin for M2M applications (registered by DOT through APPLICATION_ADMIN_CLASS), their secrets and keys.

No private material anywhere: secrets show their hint, client public keys their kid (and public JWK).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _

from credentials.governance.admin import GovernanceQueueFilter, GovernedCredentialAdminMixin
from credentials.governance.edits import scope_change
from credentials.governance.ownership import lock_membership
from credentials.models import Scope
from credentials.names import validate_credential_name
from portal.admin_mixins import ImmutableAdminMixin
from portal.json_input import JSONFormField
from tokens.catalogue import check_audiences, tidy_audiences
from tokens.clients.services import STAFF_FLAGS, m2m_app_set_staff_flag, m2m_app_update
from tokens.models import ClientPublicKey, ClientSecret, M2MApplication


class ClientSecretInline(admin.TabularInline):
    model = ClientSecret
    extra = 0
    can_delete = False
    fields = ["hint", "public_id", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ClientPublicKeyInline(admin.TabularInline):
    model = ClientPublicKey
    extra = 0
    can_delete = False
    fields = ["kid", "algorithm", "state", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="state")
    def state(self, obj):
        return obj.state


# The application fields staff edit in the admin; the rest changes through services (status, governance).
STAFF_EDITABLE = {
    "name",
    "description",
    "owner",
    "allowed_scopes",
    "allowed_audiences",
    "token_lifetime",
    "is_resource_server",
    "may_exchange_api_keys",
    "may_report_client_ip",
}


#: Hidden fields carrying what the page showed when it was read, so a save applies staff's own
#: change to the application as it is then: a narrowing or a new owner made meanwhile in the
#: dashboard is not undone by staff saving the page they opened before it (a rename, say).
PAGE_STATE = ["scopes_shown", "owner_shown"]


class _PageState(forms.CharField):
    """A hidden field of PAGE_STATE: what the page showed, never itself a change (the history, LogEntry)."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def has_changed(self, initial, data) -> bool:
        return False


def _posted_shown(form: forms.Form, name: str) -> str | None:
    """Return a page-state field as posted, or None for a form sent without it (a script, an older
    page): then the whole posted value is meant, as before the field existed."""
    if form.add_prefix(name) not in form.data:
        return None
    return form.cleaned_data[name]


class M2MApplicationAdminForm(forms.ModelForm):
    """An application as staff edit it: audiences they add must come from the resource-server catalogue;
    `scopes_shown` and `owner_shown` carry the scopes and owner the page showed (PAGE_STATE)."""

    scopes_shown = _PageState()
    owner_shown = _PageState()

    class Meta:
        model = M2MApplication
        fields = ["allowed_audiences"]  # the admin adds the fields it shows

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            held = self.instance.allowed_scopes.values_list("name", flat=True)
            self.initial.setdefault("scopes_shown", " ".join(sorted(held)))
            self.initial.setdefault("owner_shown", str(self.instance.owner_id or ""))

    def clean_name(self) -> str:
        # As the dashboard's, REST's and the CLI's names: no character that hides or reorders text.
        name = self.cleaned_data["name"]
        validate_credential_name(name)
        return name

    def clean_scopes_shown(self) -> list[str] | None:
        shown = _posted_shown(self, "scopes_shown")
        return None if shown is None else shown.split()

    def clean_owner_shown(self) -> str | None:
        return _posted_shown(self, "owner_shown")

    def clean(self):
        data = super().clean()
        audiences = data.get("allowed_audiences")
        if "allowed_audiences" not in data:
            return data
        if not isinstance(audiences, list):
            raise ValidationError({"allowed_audiences": _("Give a list of resource server identifiers.")})
        stored = self.instance.allowed_audiences if self.instance.pk is not None else []
        added = [a for a in audiences if a not in (stored or [])]
        organization = data.get("organization") or getattr(self.instance, "organization", None)
        if added and organization is not None:
            check_audiences(organization=organization, audiences=added, field="allowed_audiences")
        return data


class M2MApplicationAdmin(GovernedCredentialAdminMixin, admin.ModelAdmin):
    form = M2MApplicationAdminForm
    list_display = [
        "name",
        "client_id",
        "organization",
        "owner",
        "status",
        "review_due_at",
        "is_resource_server",
        "may_exchange_api_keys",
        "may_report_client_ip",
        "created",
    ]
    list_filter = [
        GovernanceQueueFilter,
        "status",
        "is_resource_server",
        "may_exchange_api_keys",
        "may_report_client_ip",
        "organization",
    ]
    actions = GovernedCredentialAdminMixin.governance_actions
    search_fields = ["name", "client_id", "organization__slug", "owner__email"]
    autocomplete_fields = ["owner"]
    filter_horizontal = ["allowed_scopes"]
    formfield_overrides = {models.JSONField: {"form_class": JSONFormField}}
    fields = [
        "name",
        "description",
        "client_id",
        "organization",
        "owner",
        "created_by",
        "allowed_scopes",
        "allowed_audiences",
        "token_lifetime",
        "token_endpoint_auth_method",
        "status",
        "revoked_at",
        "is_resource_server",
        "may_exchange_api_keys",
        "may_report_client_ip",
        *GovernedCredentialAdminMixin.governance_fields,
        "created",
        "updated",
    ]
    readonly_fields = [name for name in fields if name not in STAFF_EDITABLE]
    inlines = [ClientSecretInline, ClientPublicKeyInline]

    def get_fields(self, request, obj=None):
        # The page's state rides along (hidden) where staff may save the page, not on a view-only one.
        fields = list(super().get_fields(request, obj))
        if obj is not None and self.has_change_permission(request, obj):
            fields += PAGE_STATE
        return fields

    def changes_power(self, request, object_id) -> bool:
        """A new owner, wider scopes or audiences (the authority rule), or trusting an application
        across every organisation (STAFF_FLAGS: exchanging API keys, introspecting tokens), asks for a
        fresh password or second factor, like rotating the signing key."""
        shown_owner = request.POST.get("owner_shown")
        if shown_owner is None:
            if super().changes_power(request, object_id):
                return True
        elif "owner" in request.POST and request.POST["owner"] != shown_owner:
            # The owner staff chose, as save_model reads it: the one the page showed is no change.
            return True
        object_id = str(object_id)
        if not (object_id.isascii() and object_id.isdigit()):  # "²".isdigit() is true
            return False
        application = M2MApplication.objects.filter(pk=object_id).first()
        if application is None:
            return False
        return self._staff_flags_changing(request, application) or self._reach_widening(request, application)

    @staticmethod
    def _staff_flags_changing(request, application: M2MApplication) -> bool:
        # Read each box as the form will (any value but "false" and "0" is ticked), not by spelling.
        ticked = forms.CheckboxInput().value_from_datadict
        return any(getattr(application, flag) != ticked(request.POST, None, flag) for flag in STAFF_FLAGS)

    @staticmethod
    def _reach_widening(request, application: M2MApplication) -> bool:
        """Return whether the posted form adds a scope or an audience the application does not hold."""
        held = {str(pk) for pk in application.allowed_scopes.values_list("pk", flat=True)}
        ticked = set(request.POST.getlist("allowed_scopes"))
        if "scopes_shown" in request.POST:
            # As save_model applies it (scope_change): a scope the page showed ticked adds nothing.
            # Only what can name a scope reaches the query (a NUL is a DataError on PostgreSQL).
            longest = Scope._meta.get_field("name").max_length
            shown = [n for n in request.POST["scopes_shown"].split() if "\x00" not in n and len(n) <= longest]
            ticked -= {str(pk) for pk in Scope.objects.filter(name__in=shown).values_list("pk", flat=True)}
        if ticked - held:
            return True
        try:
            audiences = JSONFormField().to_python(request.POST.get("allowed_audiences"))
            # As the service stores them: " https://api…" is the audience it already holds.
            audiences = tidy_audiences(audiences) if isinstance(audiences, list) else []
        except ValidationError:
            return False  # the form refuses it: nothing is saved
        stored = application.allowed_audiences or []
        return any(audience not in stored for audience in audiences)

    def save_model(self, request, obj, form, change):
        # Every edit goes through the services, which audit it and check it (the owner's role,
        # the approval of wider scopes, the catalogue): the form only validates. All or nothing.
        data, changed = form.cleaned_data, set(form.changed_data)

        def edited(field):
            return data[field] if field in changed else None

        owner, shown_owner = edited("owner"), data.get("owner_shown")
        if owner is not None and shown_owner is not None and str(owner.pk) == shown_owner:
            owner = None  # left as the page showed it: whoever owns it now (given meanwhile) stays
        try:
            with transaction.atomic():
                # The scopes and owner as they are now, locked in the service's order (the new owner's
                # membership, then the application), so nothing changes them between here and there.
                if owner is not None:
                    lock_membership(obj.organization_id, owner.pk)
                current = M2MApplication.objects.select_for_update(of=("self",)).get(pk=obj.pk)
                if (
                    owner is not None
                    and shown_owner is not None
                    and str(current.owner_id or "") not in (shown_owner, str(owner.pk))
                ):
                    # Both chose another owner: staff decide again on the page as it is now.
                    raise ValidationError(
                        {"owner": "The owner changed since you opened the page; reload it."}, code="stale"
                    )
                scopes = None
                if "allowed_scopes" in changed:
                    held = current.allowed_scopes.values_list("name", flat=True)
                    ticked = [s.name for s in data["allowed_scopes"]]
                    # Staff's change (unticked removed, ticked added) made to the scopes as they are
                    # now, as in the dashboard: a narrowing made since the page was read stays.
                    scopes = scope_change(held, ticked, data.get("scopes_shown"))
                m2m_app_update(
                    application=obj,
                    actor=request.user,
                    name=edited("name"),
                    description=edited("description"),
                    owner=owner,
                    scopes=scopes,
                    audiences=edited("allowed_audiences"),
                    token_lifetime=edited("token_lifetime"),
                    via="admin",
                )
                for flag in STAFF_FLAGS:
                    if flag in changed:
                        m2m_app_set_staff_flag(
                            application=obj, flag=flag, value=data[flag], actor=request.user
                        )
        except ValidationError as exc:
            self.refuse_change(request, exc)

    def save_related(self, request, form, formsets, change):
        # The scopes were set by m2m_app_update (audited), not by the form's own m2m save.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_add_permission(self, request):
        # Applications are created through the dashboard or `create_m2m_app`, which reveal the secret once.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoke instead: a deletion would be unaudited, take the audit trail's target with it and
        # leave a pending application's request undecidable.
        return False


@admin.register(ClientSecret)
class ClientSecretAdmin(ImmutableAdminMixin, admin.ModelAdmin):
    """Client secrets, read-only and never deleted by hand: they are rotated and revoked (audited)."""

    list_display = ["hint", "application", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["application__organization"]
    search_fields = ["hint", "public_id", "application__name", "application__client_id"]
    fields = ["application", "hint", "public_id", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = fields


@admin.register(ClientPublicKey)
class ClientPublicKeyAdmin(ImmutableAdminMixin, admin.ModelAdmin):
    """Registered client keys, read-only: they are added and revoked from the dashboard (step-up)."""

    list_display = ["kid", "algorithm", "application", "state", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["algorithm", "application__organization"]
    search_fields = ["kid", "application__name", "application__client_id"]
    fields = [
        "application",
        "kid",
        "algorithm",
        "state",
        "public_jwk",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    readonly_fields = fields

    @admin.display(description="state")
    def state(self, obj):
        return obj.state
