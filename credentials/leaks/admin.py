"""Read-only admin list of leak reports (never the token: only its SHA-256 is stored)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from credentials.governance.admin import RecordAdmin
from credentials.governance.registry import get_kind
from credentials.leaks.models import LeakReport


@admin.register(LeakReport)
class LeakReportAdmin(RecordAdmin):
    list_display = ["received_at", "organization", "kind", "credential_link", "action_taken", "source", "url"]
    list_filter = ["action_taken", "kind", "source", "reporter"]
    search_fields = ["organization__slug", "credential_label", "url", "token_sha256"]
    date_hierarchy = "received_at"
    list_select_related = ["organization"]
    readonly_fields = [
        "received_at",
        "organization",
        "kind",
        "object_id",
        "credential_label",
        "secret_hint",
        "token_type",
        "url",
        "source",
        "reporter",
        "action_taken",
        "sightings",
        "token_sha256",
    ]
    fields = readonly_fields

    @admin.display(description="credential")
    def credential_link(self, obj: LeakReport) -> str:
        model = get_kind(obj.kind).model
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.object_id])
        return format_html('<a href="{}">{}</a>', url, obj.credential_label)
