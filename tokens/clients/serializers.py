"""REST serializers for M2M applications: a client secret appears only in the create and rotate answers."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from credentials.governance.models import SuspensionReason
from credentials.names import CredentialNameSerializerField
from credentials.serializers import PartialUpdateSerializer, PolicyInputMixin, RateLimitField, UserEmailField
from tokens.clients.quota import MODES, clean_token_quota, token_quota_of
from tokens.clients.services import MAX_OVERLAP
from tokens.models import (
    DEFAULT_TOKEN_LIFETIME,
    MAX_TOKEN_LIFETIME,
    MAX_TOKEN_QUOTA,
    MIN_TOKEN_LIFETIME,
    ClientPublicKey,
    ClientSecret,
    M2MApplication,
    ResourceServer,
)

MAX_OVERLAP_HOURS = int(MAX_OVERLAP.total_seconds() // 3600)
#: An audience is a catalogued resource server's identifier.
AUDIENCE_MAX_LENGTH = ResourceServer._meta.get_field("identifier").max_length
CREDENTIAL_STATES = ["active", "expiring", "expired", "revoked"]


class ClientSecretSerializer(serializers.ModelSerializer):
    """One client secret as the API shows it: its id and hint, never the secret or its digest."""

    status = serializers.ChoiceField(
        source="state",
        choices=CREDENTIAL_STATES,
        read_only=True,
        help_text=(
            "`expiring`: a rotation replaced it and it stops at `expires_at` (the overlap). An `active` "
            "secret may have an `expires_at` too (the organisation's maximum lifetime)."
        ),
    )

    class Meta:
        model = ClientSecret
        fields = ["id", "hint", "status", "created_at", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = fields


class ClientPublicKeySerializer(serializers.ModelSerializer):
    """A registered public key of a `private_key_jwt` application (public JWK members only)."""

    alg = serializers.CharField(source="algorithm", read_only=True)
    jwk = serializers.JSONField(source="public_jwk", read_only=True)
    status = serializers.ChoiceField(
        source="state",
        choices=CREDENTIAL_STATES,
        read_only=True,
        help_text=(
            "`expiring`: a rotation replaced it and it stops at `expires_at` (the overlap). An `active` "
            "key may have an `expires_at` too (its chosen expiry or the organisation's maximum lifetime)."
        ),
    )

    class Meta:
        model = ClientPublicKey
        fields = [
            "id",
            "kid",
            "alg",
            "jwk",
            "status",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "per_hour": {"type": "integer", "minimum": 1, "maximum": MAX_TOKEN_QUOTA, "nullable": True},
            "per_day": {"type": "integer", "minimum": 1, "maximum": MAX_TOKEN_QUOTA, "nullable": True},
            "mode": {"type": "string", "enum": list(MODES)},
        },
        "description": "Token issuance quota: tokens per clock hour and per UTC day (null: none), enforced "
        "(429 slow_down) or log-only. Without one, the global per-minute limit applies. A PATCH keeps "
        "the keys it leaves out; null removes the quota.",
    }
)
class TokenQuotaField(serializers.Field):
    """`{"per_hour": N or null, "per_day": N or null, "mode": "enforce" or "log_only"}` (clients.quota)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            clean_token_quota(data)  # shape and bounds; the service merges it with the current quota
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["token_quota"]) from None
        return data

    def to_representation(self, value):
        return token_quota_of(value)


class M2MAppSerializer(serializers.ModelSerializer):
    """An application as the management API shows it: metadata, secret hints and public keys."""

    owner = UserEmailField()
    created_by = UserEmailField()
    scopes = serializers.SerializerMethodField()
    audiences = serializers.ListField(
        source="allowed_audiences", child=serializers.CharField(), read_only=True
    )
    status = serializers.ChoiceField(choices=M2MApplication.Status.choices, read_only=True)
    # "" unless suspended: the schema says so too (its enum allows the blank it is served with).
    suspension_reason = serializers.ChoiceField(
        choices=SuspensionReason.choices, allow_blank=True, read_only=True
    )
    created_at = serializers.DateTimeField(source="created", read_only=True)
    updated_at = serializers.DateTimeField(source="updated", read_only=True)
    last_used_at = serializers.SerializerMethodField()
    secrets = ClientSecretSerializer(many=True, read_only=True)
    public_keys = ClientPublicKeySerializer(many=True, read_only=True)
    allowed_ips = serializers.ListField(child=serializers.CharField(), read_only=True)
    rate_limit = RateLimitField(read_only=True)
    token_quota = TokenQuotaField(source="*", read_only=True)

    class Meta:
        model = M2MApplication
        fields = [
            "id",
            "client_id",
            "name",
            "description",
            "owner",
            "created_by",
            "scopes",
            "audiences",
            "token_lifetime",
            "token_endpoint_auth_method",
            "status",
            "created_at",
            "updated_at",
            "last_used_at",
            "review_due_at",
            "orphaned_at",
            "suspended_at",
            "suspension_reason",
            "revoked_at",
            "allowed_ips",
            "rate_limit",
            "token_quota",
            "secrets",
            "public_keys",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_scopes(self, obj: M2MApplication) -> list[str]:
        # .all() reads the prefetched rows; sorting in Python keeps it at no extra query.
        return sorted(scope.name for scope in obj.allowed_scopes.all())

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_last_used_at(self, obj: M2MApplication):
        used = [c.last_used_at for c in (*obj.secrets.all(), *obj.public_keys.all()) if c.last_used_at]
        return serializers.DateTimeField().to_representation(max(used)) if used else None


class M2MAppCreatedSerializer(M2MAppSerializer):
    """A just-created application; a client-secret application's `client_secret`, in this response only."""

    # Not read-only, only so that the schema marks it optional; this serializer never reads input.
    client_secret = serializers.CharField(
        required=False,
        help_text="Present for `client_secret_basic` applications only. Not stored; never shown again.",
    )

    class Meta(M2MAppSerializer.Meta):
        fields = [*M2MAppSerializer.Meta.fields, "client_secret"]
        read_only_fields = M2MAppSerializer.Meta.fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # The model's own `client_secret` column is DOT's, unused and empty: never shown.
        data.pop("client_secret", None)
        plaintext = self.context.get("client_secret")
        if plaintext:
            data["client_secret"] = plaintext
        return data


class M2MAppCreateSerializer(PolicyInputMixin, serializers.Serializer):
    """Input for creating an application; the owner defaults to the caller (or the credential's owner)."""

    name = CredentialNameSerializerField(max_length=255)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    owner = serializers.EmailField(required=False)
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=100
    )
    audiences = serializers.ListField(
        child=serializers.CharField(max_length=AUDIENCE_MAX_LENGTH),
        required=False,
        default=list,
        max_length=20,
        help_text="Resource indicators (RFC 8707) the application may request tokens for.",
    )
    token_lifetime = serializers.IntegerField(
        min_value=MIN_TOKEN_LIFETIME,
        max_value=MAX_TOKEN_LIFETIME,
        default=DEFAULT_TOKEN_LIFETIME,
        help_text="Lifetime of the access tokens it obtains, in seconds.",
    )
    token_endpoint_auth_method = serializers.ChoiceField(
        choices=M2MApplication.AuthMethod.choices, default=M2MApplication.AuthMethod.CLIENT_SECRET
    )
    public_key = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=10_000,
        help_text="`private_key_jwt` only: its first public key, as a JWK (JSON) or PEM.",
    )
    token_quota = TokenQuotaField(required=False)


class M2MAppUpdateSerializer(PolicyInputMixin, PartialUpdateSerializer):
    """Input for changing an application's name, description, owner, scopes or runtime policy.

    Its audiences and token lifetime are fixed at creation (staff change them in the admin).
    """

    shown = M2MAppSerializer
    create_only = frozenset({"public_key"})  # a later key is added at `…/public-keys/`

    name = CredentialNameSerializerField(max_length=255, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    owner = serializers.EmailField(required=False)
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=100
    )
    token_quota = TokenQuotaField(required=False)


class SecretRotateSerializer(serializers.Serializer):
    """Input for rotating: how long the current secrets keep working (0 to 168 hours).

    Omitted: the organisation's default rotation overlap.
    """

    overlap_hours = serializers.IntegerField(min_value=0, max_value=MAX_OVERLAP_HOURS, required=False)


class SecretRotateResponseSerializer(serializers.Serializer):
    client_id = serializers.CharField()
    client_secret = serializers.CharField(help_text="The new secret. Not stored; never shown again.")
    secret = ClientSecretSerializer(help_text="The new secret's metadata.")
    application = M2MAppSerializer(help_text="The application, its previous secrets now expiring.")


class PublicKeyAddSerializer(serializers.Serializer):
    """Input for registering a public key (`private_key_jwt`), optionally retiring the current ones."""

    public_key = serializers.CharField(
        max_length=10_000, help_text="A public JWK (JSON) or a PEM public key."
    )
    alg = serializers.ChoiceField(
        choices=ClientPublicKey.Algorithm.choices,
        required=False,
        help_text="The `alg` the service signs with; only it is accepted for this key. Omitted: from the key "
        "(RS256 for RSA).",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    overlap_hours = serializers.IntegerField(
        min_value=0,
        max_value=MAX_OVERLAP_HOURS,
        required=False,
        allow_null=True,
        help_text="Given: the current keys stop after this many hours (rotation with overlap).",
    )
