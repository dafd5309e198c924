"""Admin for the scope catalogue; importing the packages' admin modules registers theirs too."""

from __future__ import annotations

from django.contrib import admin

from credentials.api_keys import admin as _api_keys_admin  # noqa: F401 - registers the API keys
from credentials.leaks import admin as _leaks_admin  # noqa: F401 - registers the leak reports
from credentials.models import Scope
from credentials.webhooks import admin as _webhooks_admin  # noqa: F401 - registers the webhook admin


@admin.register(Scope)
class ScopeAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "created_at"]
    search_fields = ["name", "description"]
