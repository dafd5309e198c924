"""Admin for the scope catalogue and API keys."""

from django.contrib import admin

from credentials.models import Scope


@admin.register(Scope)
class ScopeAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "created_at"]
    search_fields = ["name", "description"]
