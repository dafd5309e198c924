"""Admin for the scope catalogue; importing the packages' admin modules registers theirs too."""

from __future__ import annotations

from django.contrib import admin

from credentials.api_keys import admin as _api_keys_admin  # noqa: F401 - registers the API keys
from credentials.api_keys.models import ApiKey
from credentials.governance.models import CredentialRequest
from credentials.leaks import admin as _leaks_admin  # noqa: F401 - registers the leak reports
from credentials.models import Scope
from credentials.webhooks import admin as _webhooks_admin  # noqa: F401 - registers the webhook admin


def scope_in_use(scope: Scope) -> bool:
    """Return whether any credential, request or resource server names the scope.

    Applications and resource servers link to it (every many-to-many relation is asked, so this
    module names no other kind); API keys and requests hold its name.
    """
    for relation in Scope._meta.related_objects:
        if (relation.many_to_many or relation.one_to_many) and getattr(
            scope, relation.get_accessor_name()
        ).exists():
            return True
    quoted = f'"{scope.name}"'
    return (
        ApiKey.objects.filter(scopes__icontains=quoted).exists()
        or CredentialRequest.objects.filter(requested_scopes__icontains=quoted).exists()
    )


@admin.register(Scope)
class ScopeAdmin(admin.ModelAdmin):
    """The scope catalogue. A scope in use keeps its name and stays: API keys hold it by name, and a
    resource server whose accepted scopes lost it would accept every scope."""

    list_display = ["name", "description", "created_at"]
    search_fields = ["name", "description"]

    def get_readonly_fields(self, request, obj=None):
        return ["name"] if obj is not None and scope_in_use(obj) else []

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and scope_in_use(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, each checked (has_delete_permission)
        return actions
