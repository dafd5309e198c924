"""Admin for M2M applications (registered by DOT through APPLICATION_ADMIN_CLASS), secrets and signing keys.

No private material anywhere: secrets show their hint, client public keys and signing keys their kid
(and public JWK).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from credentials.governance.admin import GovernanceQueueFilter, GovernedCredentialAdminMixin
from credentials.governance.ownership import credential_reassign_owner
from portal.stepup import step_up_redirect
from tokens import federation_admin as _federation_admin  # noqa: F401 - registers federated identities
from tokens.catalogue import (
    check_default_stays_open,
    check_identifier,
    resource_server_create,
    resource_server_update,
)
from tokens.models import ClientPublicKey, ClientSecret, M2MApplication, ResourceServer, SigningKey
from tokens.services import STAFF_FLAGS, m2m_app_set_staff_flag, signing_key_rotate


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


class M2MApplicationAdmin(GovernedCredentialAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "client_id",
        "organization",
        "owner",
        "status",
        "review_due_at",
        "is_resource_server",
        "may_exchange_api_keys",
        "created",
    ]
    list_filter = [
        GovernanceQueueFilter,
        "status",
        "is_resource_server",
        "may_exchange_api_keys",
        "organization",
    ]
    actions = GovernedCredentialAdminMixin.governance_actions
    search_fields = ["name", "client_id", "organization__slug", "owner__email"]
    autocomplete_fields = ["owner"]
    filter_horizontal = ["allowed_scopes"]
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
        "review_due_at",
        "last_reviewed_at",
        "last_reviewed_by",
        "orphaned_at",
        "suspended_at",
        "suspension_reason",
        "created",
        "updated",
    ]
    readonly_fields = [
        "client_id",
        "token_endpoint_auth_method",
        "organization",
        "created_by",
        "status",
        "revoked_at",
        "review_due_at",
        "last_reviewed_at",
        "last_reviewed_by",
        "orphaned_at",
        "suspended_at",
        "suspension_reason",
        "created",
        "updated",
    ]
    inlines = [ClientSecretInline, ClientPublicKeyInline]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Trusting an application across every organisation (STAFF_FLAGS: exchanging API keys,
        # introspecting tokens) is a security setting: it asks for a fresh password or second
        # factor, like rotating the signing key.
        if request.method == "POST" and self._staff_flags_changing(request, object_id):
            stale = step_up_redirect(request)
            if stale is not None:
                return stale
        return super().change_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _staff_flags_changing(request, object_id) -> bool:
        if not str(object_id).isdigit():
            return False
        stored = M2MApplication.objects.filter(pk=object_id).values(*STAFF_FLAGS).first()
        if stored is None:
            return False
        return any(stored[flag] != (request.POST.get(flag) in ("on", "true", "1")) for flag in STAFF_FLAGS)

    def save_model(self, request, obj, form, change):
        # An owner change goes through governance: audited, checked, and it clears an orphan mark.
        # A staff flag goes through its service: audited. The plain save keeps the stored values.
        new_owner = obj.owner
        changed_flags = {
            flag: getattr(obj, flag) for flag in STAFF_FLAGS if change and flag in form.changed_data
        }
        if change and ("owner" in form.changed_data or changed_flags):
            stored = M2MApplication.objects.get(pk=obj.pk)
            obj.owner = stored.owner
            for flag in changed_flags:
                setattr(obj, flag, getattr(stored, flag))
        super().save_model(request, obj, form, change)
        for flag, value in changed_flags.items():
            updated = m2m_app_set_staff_flag(application=obj, flag=flag, value=value, actor=request.user)
            setattr(obj, flag, getattr(updated, flag))
        if change and "owner" in form.changed_data:
            from django.core.exceptions import ValidationError

            try:
                credential_reassign_owner(credential=obj, owner=new_owner, actor=request.user, via="admin")
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)

    def has_add_permission(self, request):
        # Applications are created through the dashboard or `create_m2m_app`, which reveal the secret once.
        return False


@admin.register(ClientSecret)
class ClientSecretAdmin(admin.ModelAdmin):
    list_display = ["hint", "application", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["application__organization"]
    search_fields = ["hint", "public_id", "application__name", "application__client_id"]
    fields = ["application", "hint", "public_id", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ClientPublicKey)
class ClientPublicKeyAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    list_display = ["kid", "algorithm", "status", "created_at", "retired_at", "publish_until"]
    list_filter = ["status", "algorithm"]
    fields = ["kid", "algorithm", "status", "public_jwk", "created_at", "retired_at", "publish_until"]
    readonly_fields = fields
    actions = ["rotate_rs256", "rotate_es256"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _rotate(self, request, algorithm: str):
        # Rotating the key every token is signed with asks for a fresh password or second factor.
        stale = step_up_redirect(request)
        if stale is not None:
            return stale
        key, previous = signing_key_rotate(actor=request.user, algorithm=algorithm)
        note = (
            f" The previous key {previous.kid} stays published until"
            f" {previous.publish_until:%Y-%m-%d %H:%M} UTC."
            if previous
            else ""
        )
        self.message_user(
            request, f"Tokens are now signed with {algorithm} key {key.kid}.{note}", messages.SUCCESS
        )

    @admin.action(description="Rotate the signing key (new RS256 key; the selection is ignored)")
    def rotate_rs256(self, request, queryset):
        return self._rotate(request, SigningKey.Algorithm.RS256)

    @admin.action(description="Rotate the signing key (new ES256 key; the selection is ignored)")
    def rotate_es256(self, request, queryset):
        return self._rotate(request, SigningKey.Algorithm.ES256)


class ResourceServerAdminForm(forms.ModelForm):
    """A catalogue entry; its identifier is set once, the default audience stays open to all."""

    class Meta:
        model = ResourceServer
        fields = ["identifier", "name", "description", "scopes", "organizations", "is_active"]

    def clean_identifier(self) -> str:
        try:
            return check_identifier(self.cleaned_data["identifier"])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["identifier"]) from None

    def clean(self):
        data = super().clean()
        identifier = self.instance.identifier if self.instance.pk else data.get("identifier")
        if identifier:
            check_default_stays_open(
                identifier,
                is_active=data.get("is_active", False),
                organizations=list(data.get("organizations") or []),
            )
        return data


@admin.register(ResourceServer)
class ResourceServerAdmin(admin.ModelAdmin):
    """The resource-server catalogue: the audiences organisations may choose (audited, step-up to change)."""

    form = ResourceServerAdminForm
    list_display = ["name", "identifier", "is_active", "accepted_scopes", "open_to", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["identifier", "name", "description"]
    filter_horizontal = ["scopes", "organizations"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("scopes", "organizations")

    @admin.display(description="accepted scopes")
    def accepted_scopes(self, obj: ResourceServer) -> str:
        return " ".join(sorted(s.name for s in obj.scopes.all())) or "any"

    @admin.display(description="organisations")
    def open_to(self, obj: ResourceServer) -> str:
        return ", ".join(sorted(o.slug for o in obj.organizations.all())) or "every organisation"

    def get_readonly_fields(self, request, obj=None):
        # Applications name the identifier: it never changes (register a new entry instead).
        return ["identifier"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        # Deactivate instead: applications keep naming the identifier, and the audit trail its target.
        return False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Which organisations may get tokens for an API is a security setting: a fresh sign-in first.
        if request.method == "POST":
            stale = step_up_redirect(request)
            if stale is not None:
                return stale
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {
            "name": data["name"],
            "description": data["description"],
            "scopes": data["scopes"],
            "organizations": data["organizations"],
            "is_active": data["is_active"],
        }
        if change:
            resource_server_update(resource_server=obj, actor=request.user, **fields)
        else:
            obj.pk = resource_server_create(identifier=data["identifier"], actor=request.user, **fields).pk

    def save_related(self, request, form, formsets, change):
        # The services set the scopes and organisations, inside their audited transaction.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


def hide_unused_oauth_models() -> None:
    """Unregister DOT's access tokens, grants, ID and refresh tokens: never stored here, always empty.

    Called from TokensConfig.ready, after the admin's autodiscovery: DOT's admin module imports
    this one (APPLICATION_ADMIN_CLASS) before registering its own models, so hiding them at
    import time came too early and left them in the admin.
    """
    for model in (
        get_access_token_model(),
        get_grant_model(),
        get_id_token_model(),
        get_refresh_token_model(),
    ):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
