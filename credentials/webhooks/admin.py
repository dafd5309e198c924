"""Admin for webhooks: endpoints and deliveries, read-only, never a secret or its ciphertext.

Nor deleted by hand: removing an endpoint goes through `webhook_endpoint_delete` (audited), and
a delivery row is an event someone is owed (a leak alert among them)."""

from __future__ import annotations

from django.contrib import admin

from credentials.webhooks.models import WebhookDelivery, WebhookEndpoint
from portal.admin_mixins import ImmutableAdminMixin


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ImmutableAdminMixin, admin.ModelAdmin):
    list_display = ["url", "organization", "active", "secret_hint", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "organization__slug", "description"]
    list_select_related = ["organization"]
    # Explicit list: the ciphertexts are never shown, not even encrypted.
    fields = [
        "organization",
        "url",
        "description",
        "event_types",
        "active",
        "secret_hint",
        "secret_rotated_at",
        "previous_secret_expires_at",
        "created_by",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ImmutableAdminMixin, admin.ModelAdmin):
    list_display = [
        "event_type",
        "endpoint",
        "state",
        "attempts",
        "last_status_code",
        "created_at",
        "next_attempt_at",
    ]
    list_filter = ["state", "event_type"]
    search_fields = ["event_id", "endpoint__url", "endpoint__organization__slug"]
    list_select_related = ["endpoint"]
    fields = [
        "endpoint",
        "event_id",
        "event_type",
        "payload",
        "state",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "response_excerpt",
        "created_at",
        "delivered_at",
    ]
    readonly_fields = fields
