"""Admin of the tokens app (Django loads this module): each part's admin, the resource-server catalogue.

Also hides django-oauth-toolkit's models that this portal never stores.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from portal.admin_mixins import StepUpChangeFormMixin
from tokens.catalogue import (
    check_default_stays_open,
    check_identifier,
    resource_server_create,
    resource_server_update,
)

# Imported for their @admin.register side effects: each part keeps its own admin.
from tokens.clients import admin as _clients_admin  # noqa: F401
from tokens.federation import admin as _federation_admin  # noqa: F401
from tokens.models import ResourceServer
from tokens.signing import admin as _signing_admin  # noqa: F401


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
class ResourceServerAdmin(StepUpChangeFormMixin, admin.ModelAdmin):
    """The resource-server catalogue: the audiences organisations may choose (audited, step-up to change).

    Which organisations may get tokens for an API is a security setting: a fresh sign-in first.
    """

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
