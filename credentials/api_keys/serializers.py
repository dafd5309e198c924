"""REST serializers for API keys: the plaintext appears only in the create and rotate responses."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from credentials.api_keys.models import ApiKey, Environment
from credentials.api_keys.services import MAX_OVERLAP
from credentials.governance.models import CredentialState
from credentials.lifetimes import MAX_LIFETIME_DAYS, check_expiry, expiry_in_days
from credentials.names import CredentialNameSerializerField
from credentials.serializers import PartialUpdateSerializer, PolicyInputMixin, RateLimitField, UserEmailField


class ApiKeySerializer(serializers.ModelSerializer):
    """An API key as the management API shows it: metadata only, never secret material."""

    id = serializers.CharField(source="key_id", read_only=True)
    prefix = serializers.CharField(source="display_prefix", read_only=True)
    owner = UserEmailField()
    created_by = UserEmailField()
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)
    status = serializers.ChoiceField(source="state", choices=CredentialState.choices, read_only=True)
    replaces = serializers.SerializerMethodField()
    allowed_ips = serializers.ListField(child=serializers.CharField(), read_only=True)
    rate_limit = RateLimitField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "description",
            "prefix",
            "last4",
            "owner",
            "created_by",
            "scopes",
            "environment",
            "status",
            "created_at",
            "expires_at",
            "last_used_at",
            "last_used_ip",
            "replaces",
            "rotated_at",
            "revoked_at",
            "revocation_reason",
            "allowed_ips",
            "rate_limit",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_replaces(self, obj: ApiKey) -> str | None:
        return obj.replaces.key_id if obj.replaces_id else None


class ApiKeyWithSecretSerializer(ApiKeySerializer):
    """A just-issued key with its plaintext, shown in this one response only."""

    key = serializers.SerializerMethodField()

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_key(self, obj: ApiKey) -> str:
        return self.context["plaintext"]


class ApiKeyCreateSerializer(PolicyInputMixin, serializers.Serializer):
    """Input for creating a key; the owner defaults to the caller (or the calling key's owner)."""

    name = CredentialNameSerializerField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    owner = serializers.EmailField(required=False)
    scopes = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    environment = serializers.ChoiceField(choices=Environment.choices, required=False)
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text=f"At most {MAX_LIFETIME_DAYS} days (ten years) ahead, or the organisation's maximum.",
    )
    expires_in_days = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIFETIME_DAYS)

    def validate_expires_at(self, value):
        if value is not None:
            try:
                check_expiry(value)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.message_dict["expires_at"]) from None
        return value

    def validate(self, attrs):
        if attrs.get("expires_at") and attrs.get("expires_in_days"):
            raise serializers.ValidationError("Give expires_at or expires_in_days, not both.")
        if attrs.get("expires_in_days"):
            attrs["expires_at"] = expiry_in_days(attrs.pop("expires_in_days"))
        return attrs


class ApiKeyUpdateSerializer(PolicyInputMixin, PartialUpdateSerializer):
    """Input for changing a key's name, description, owner, scopes or runtime policy."""

    shown = ApiKeySerializer
    create_only = frozenset({"expires_in_days"})

    name = CredentialNameSerializerField(max_length=100, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    owner = serializers.EmailField(required=False)
    scopes = serializers.ListField(child=serializers.CharField(max_length=100), required=False)


class ApiKeyRotateSerializer(serializers.Serializer):
    """Input for rotating: how long the old key keeps working (0 to 168 hours).

    Without it, the organisation's default rotation overlap applies, as on the dashboard and for
    an application's secrets.
    """

    overlap_hours = serializers.IntegerField(
        min_value=0, max_value=int(MAX_OVERLAP.total_seconds() // 3600), required=False
    )


class ApiKeyRotateResponseSerializer(serializers.Serializer):
    successor = ApiKeyWithSecretSerializer()
    rotated = ApiKeySerializer()


class ApiKeyRevokeSerializer(serializers.Serializer):
    """Input for revoking: why."""

    reason = serializers.CharField(max_length=255)


class ApiKeyVerifyRequestSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=200, trim_whitespace=True)
    client_ip = serializers.IPAddressField(
        required=False,
        help_text="The address the key was presented from, as your service saw it: the key's IP "
        "allowlist is checked against it (not checked when omitted).",
    )


class ApiKeyVerifyResponseSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    code = serializers.ChoiceField(
        choices=["not_found", "revoked", "expired", "malformed", "ip_denied", "rate_limited"],
        required=False,
        help_text="Only when invalid.",
    )
    organization = serializers.CharField(required=False)
    key_id = serializers.CharField(required=False)
    name = serializers.CharField(required=False)
    owner = serializers.EmailField(required=False, allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField(), required=False)
    environment = serializers.ChoiceField(choices=Environment.choices, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    retry_after = serializers.IntegerField(required=False, help_text="Seconds, only with `rate_limited`.")
