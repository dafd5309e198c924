"""REST API representations of webhook endpoints and deliveries (never the secret, except once)."""

from __future__ import annotations

from rest_framework import serializers

from credentials.serializers import PartialUpdateSerializer
from credentials.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from credentials.webhooks.services import MAX_SECRET_OVERLAP_HOURS


class WebhookEndpointSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "active",
            "secret_hint",
            "secret_rotated_at",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.SerializerMethodField(help_text="The signing secret: in this response only.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, _obj) -> str:
        return self.context["secret"]


class _Events(serializers.ListField):
    child = serializers.ChoiceField(choices=EventType.choices)

    def __init__(self, **kwargs):
        super().__init__(allow_empty=False, max_length=len(EventType.choices), **kwargs)


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, help_text="https:// to a public host.")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    event_types = _Events()


class WebhookEndpointUpdateSerializer(PartialUpdateSerializer):
    """Input for changing an endpoint's events, description or active flag; its URL stays (add a new
    endpoint), and a different `url`, like any other field it shows, is refused on that field."""

    shown = WebhookEndpointSerializer

    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = _Events(required=False)
    active = serializers.BooleanField(required=False)


class WebhookSecretRotateSerializer(serializers.Serializer):
    overlap_hours = serializers.IntegerField(min_value=0, max_value=MAX_SECRET_OVERLAP_HOURS, default=24)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "state",
            "attempts",
            "created_at",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "delivered_at",
        ]
        read_only_fields = fields
