"""REST fields every credential kind shares: its people by email, its runtime policy (IPs, rate limit)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from credentials import policy


@extend_schema_field(serializers.EmailField(allow_null=True))
class UserEmailField(serializers.Field):
    """A person (a credential's owner or creator) by email, read-only; null when there is none."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return value.email


class AllowedIpsField(serializers.ListField):
    """A list of IPv4/IPv6 CIDR strings (at most 100, no host bits set); `[]` allows any address."""

    child = serializers.CharField(max_length=64)

    def __init__(self, **kwargs):
        super().__init__(max_length=policy.MAX_ALLOWED_IPS, **kwargs)

    def to_internal_value(self, data):
        return _policy_value(policy.clean_allowed_ips, super().to_internal_value(data))


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "requests": {"type": "integer", "minimum": 1, "maximum": policy.MAX_REQUESTS},
            "per_seconds": {"type": "integer", "minimum": 1, "maximum": policy.MAX_WINDOW_SECONDS},
        },
        "required": ["requests", "per_seconds"],
    }
)
class RateLimitField(serializers.Field):
    """`{"requests": N, "per_seconds": S}` or null (no limit)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return _policy_value(policy.clean_rate_limit, data)

    def to_representation(self, value):
        return value or None


def _policy_value(clean, value):
    try:
        return clean(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(next(iter(exc.message_dict.values()))) from None


class PolicyInputMixin(serializers.Serializer):
    """The runtime policy fields of a create or update request."""

    allowed_ips = AllowedIpsField(required=False)
    rate_limit = RateLimitField(required=False)


class PartialUpdateSerializer(serializers.Serializer):
    """Input of a PATCH that refuses a change it cannot make instead of answering 200 without it.

    DRF drops keys a serializer does not declare. A field the resource shows (`shown`, its
    output serializer) but this input cannot change is a 400 on that field when its value
    differs from the current one (`context["current"]`, the shown representation), so a client
    that sends back what it read, with one change, still succeeds. A field only the create
    request takes (`create_only`, not shown: nothing to compare with) is a 400 whatever its value.
    """

    shown: type[serializers.Serializer]
    create_only: frozenset[str] = frozenset()
    #: What every use moves (last use, the secrets' and keys' own last use, the update time): it
    #: may have changed since the client read it, so a value sent back there is ignored, never a
    #: 400. A different status, expiry or the like is still refused: the client meant a change.
    server_maintained = frozenset(
        {"last_used_at", "last_used_ip", "secrets", "public_keys", "updated_at", "updated", "requests_30d"}
    )

    def validate(self, attrs):
        current = self.context.get("current") or {}
        sent = set(self.initial_data)
        fixed = sorted(
            {
                name
                for name in sent & set(self.shown().fields) - set(self.fields) - self.server_maintained
                if name not in current or self.initial_data[name] != current[name]
            }
            | sent & self.create_only
        )
        if fixed:
            raise serializers.ValidationError(
                {name: ["This field cannot be changed here."] for name in fixed}
            )
        return super().validate(attrs)
