"""Admin for API keys: no secret material shown, no keys created here."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke, api_key_update
from credentials.governance.admin import GovernanceQueueFilter, GovernedCredentialAdminMixin
from credentials.governance.models import CredentialState
from credentials.models import Scope


class ApiKeyAdminForm(forms.ModelForm):
    """Only the owner is editable, and only to a member of the key's organisation."""

    # The owner's choices (the organisation's members) come from GovernedCredentialAdminMixin.get_form.
    class Meta:
        model = ApiKey
        fields = ["owner"]
        help_texts = {"owner": "Reassign to another member of the key's organisation."}


class StateFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(v, label) for v, label in CredentialState.choices]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == CredentialState.ACTIVE:
            return queryset.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), status="active")
        if self.value() == CredentialState.EXPIRED:
            return queryset.filter(status="active", expires_at__lte=now)
        if self.value():
            return queryset.filter(status=self.value())
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(GovernedCredentialAdminMixin, admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = [
        "name",
        "key_display",
        "organization",
        "owner",
        "state_display",
        "environment",
        "last_used_at",
        "expires_at",
        "review_due_at",
        "created_at",
    ]
    list_filter = [GovernanceQueueFilter, StateFilter, "environment", "organization"]
    search_fields = ["name", "key_id", "owner__email", "organization__slug", "organization__name"]
    list_select_related = ["organization", "owner"]
    # The digest and pepper id are deliberately absent: nothing secret-derived is shown.
    readonly_fields = [
        "key_display",
        "name",
        "organization",
        "state_display",
        "environment",
        "scopes_display",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_ip",
        "replaces",
        "rotated_at",
        "revoked_at",
        "revoked_by",
        "revocation_reason",
        *GovernedCredentialAdminMixin.governance_fields,
    ]
    fields = ["key_display", "name", "organization", "owner", *readonly_fields[3:]]
    actions = ["revoke_selected", *GovernedCredentialAdminMixin.governance_actions]

    @admin.display(description="key")
    def key_display(self, obj: ApiKey) -> str:
        return f"{obj.display_prefix}…{obj.last4}"

    @admin.display(description="status")
    def state_display(self, obj: ApiKey) -> str:
        return obj.state

    @admin.display(description="scopes")
    def scopes_display(self, obj: ApiKey):
        """Show the scopes as a list of names with their descriptions, not as raw JSON."""
        if not obj.scopes:
            return "none (the key can only identify itself)"
        described = dict(Scope.objects.filter(name__in=obj.scopes).values_list("name", "description"))
        return format_html_join(
            mark_safe("<br>"),  # noqa: S308  a constant
            "<code>{}</code>{}",
            ((name, f" — {described[name]}" if described.get(name) else "") for name in obj.scopes),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Revoke instead: a deleted key would take its audit trail's target with it.
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if "owner" in form.changed_data:
            try:
                api_key_update(api_key=obj, actor=request.user, owner=form.cleaned_data["owner"], via="admin")
            except ValidationError as exc:
                self.refuse_change(request, exc)

    @admin.action(permissions=["act"], description="Revoke selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.filter(status__in=[CredentialState.ACTIVE, CredentialState.SUSPENDED]):
            try:
                api_key_revoke(
                    api_key=api_key, actor=request.user, reason="Revoked by staff in the admin.", via="admin"
                )
            except ValidationError:
                continue
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)
