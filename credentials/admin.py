"""Admin for the scope catalogue and API keys: no secret material shown, no keys created here."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from credentials.models import ApiKey, ApiKeyStatus, Scope
from credentials.selectors import organization_members
from credentials.services import api_key_revoke, api_key_update


@admin.register(Scope)
class ScopeAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "created_at"]
    search_fields = ["name", "description"]


class ApiKeyAdminForm(forms.ModelForm):
    """Only the owner is editable, and only to a member of the key's organisation."""

    class Meta:
        model = ApiKey
        fields = ["owner"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["owner"].queryset = organization_members(self.instance.organization)
            self.fields["owner"].help_text = "Reassign to another member of the key's organisation."


class StateFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return ApiKeyStatus.choices

    def queryset(self, request, queryset):
        from django.db.models import Q
        from django.utils import timezone

        now = timezone.now()
        if self.value() == ApiKeyStatus.ACTIVE:
            return queryset.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), status="active")
        if self.value() == ApiKeyStatus.EXPIRED:
            return queryset.filter(status="active", expires_at__lte=now)
        if self.value() == ApiKeyStatus.REVOKED:
            return queryset.filter(status="revoked")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
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
        "created_at",
    ]
    list_filter = [StateFilter, "environment", "organization"]
    search_fields = ["name", "key_id", "owner__email", "organization__slug", "organization__name"]
    list_select_related = ["organization", "owner"]
    # The digest and pepper id are deliberately absent: nothing secret-derived is shown.
    readonly_fields = [
        "key_display",
        "name",
        "organization",
        "state_display",
        "environment",
        "scopes",
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
    ]
    fields = ["key_display", "name", "organization", "owner", *readonly_fields[3:]]
    actions = ["revoke_selected", "reassign_owner"]

    @admin.display(description="key")
    def key_display(self, obj: ApiKey) -> str:
        return f"{obj.display_prefix}…{obj.last4}"

    @admin.display(description="status")
    def state_display(self, obj: ApiKey) -> str:
        return obj.state

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
                self.message_user(request, " ".join(exc.messages), messages.ERROR)

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.filter(status=ApiKeyStatus.ACTIVE):
            try:
                api_key_revoke(
                    api_key=api_key, actor=request.user, reason="Revoked by staff in the admin.", via="admin"
                )
            except ValidationError:
                continue
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)

    @admin.action(description="Reassign the owner of selected API keys")
    def reassign_owner(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        organization_ids = set(queryset.values_list("organization_id", flat=True))
        if len(organization_ids) != 1:
            self.message_user(request, "Select keys of one organisation at a time.", messages.ERROR)
            return None
        organization = queryset.first().organization
        form = ReassignOwnerForm(
            request.POST if "apply" in request.POST else None, members=organization_members(organization)
        )
        if form.is_valid():
            changed = 0
            for api_key in queryset:
                try:
                    api_key_update(
                        api_key=api_key, actor=request.user, owner=form.cleaned_data["owner"], via="admin"
                    )
                except ValidationError as exc:
                    self.message_user(request, " ".join(exc.messages), messages.ERROR)
                    return None
                changed += 1
            self.message_user(
                request,
                f"{changed} key(s) now owned by {form.cleaned_data['owner'].email}.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Reassign the owner",
            "form": form,
            "keys": queryset,
            "organization": organization,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/credentials/apikey/reassign_owner.html", context)


class ReassignOwnerForm(forms.Form):
    owner = forms.ModelChoiceField(label="New owner", queryset=None)

    def __init__(self, *args, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = members
        self.fields["owner"].label_from_instance = lambda u: u.email
