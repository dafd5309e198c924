"""Admin for M2M applications (registered by DOT through APPLICATION_ADMIN_CLASS), secrets and signing keys.

No private material anywhere: secrets show their hint, client public keys and signing keys their kid
(and public JWK).
"""

from __future__ import annotations

from django.contrib import admin, messages
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from credentials.governance.admin import GovernanceQueueFilter, GovernedCredentialAdminMixin
from credentials.governance.services import credential_reassign_owner
from portal.stepup import step_up_redirect
from tokens import federation_admin as _federation_admin  # noqa: F401 - registers federated identities
from tokens.models import ClientPublicKey, ClientSecret, M2MApplication, SigningKey
from tokens.services import m2m_app_set_exchange, signing_key_rotate


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
        # Letting a gateway exchange every organisation's API keys is a security setting: it asks
        # for a fresh password or second factor, like rotating the signing key.
        if request.method == "POST" and self._exchange_flag_changes(request, object_id):
            stale = step_up_redirect(request)
            if stale is not None:
                return stale
        return super().change_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _exchange_flag_changes(request, object_id) -> bool:
        if not str(object_id).isdigit():
            return False
        posted = request.POST.get("may_exchange_api_keys") in ("on", "true", "1")
        stored = M2MApplication.objects.filter(pk=object_id).values_list("may_exchange_api_keys", flat=True)
        return bool(stored) and stored[0] != posted

    def save_model(self, request, obj, form, change):
        # An owner change goes through governance: audited, checked, and it clears an orphan mark.
        new_owner = obj.owner
        may_exchange = obj.may_exchange_api_keys
        if change and {"owner", "may_exchange_api_keys"} & set(form.changed_data):
            stored = M2MApplication.objects.get(pk=obj.pk)
            obj.owner, obj.may_exchange_api_keys = stored.owner, stored.may_exchange_api_keys
        super().save_model(request, obj, form, change)
        if change and "may_exchange_api_keys" in form.changed_data:
            # Trusting a gateway with every organisation's keys is audited, like an owner change.
            obj.may_exchange_api_keys = m2m_app_set_exchange(
                application=obj, allowed=may_exchange, actor=request.user
            ).may_exchange_api_keys
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


# Access tokens, grants, ID and refresh tokens are never stored here: hide DOT's empty tables.
for _model in (get_access_token_model(), get_grant_model(), get_id_token_model(), get_refresh_token_model()):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
