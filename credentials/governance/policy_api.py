"""Organisation policy settings over REST: a view shape every group of settings shares, and the
runtime-policy rules at `/api/v1/orgs/<slug>/policy/runtime/` (docs/governance.md)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from credentials.governance.org_policy import policy_for, policy_update
from credentials.governance.selectors import InventoryFilters, inventory_queryset
from credentials.serializers import RateLimitField
from portal.api.access import OrganizationApiView
from portal.api.errors import api_error


def policy_settings_schema(*, rules: str, serializer: type[serializers.Serializer], existing: str):
    """Document a `PolicySettingsView`: read and change the organisation's `rules`, which flag
    (never break) the `existing` credentials they would refuse."""
    return extend_schema_view(
        get=extend_schema(summary=f"The organisation's {rules}", responses=OpenApiTypes.OBJECT),
        patch=extend_schema(
            summary=f"Change the organisation's {rules}",
            request=serializer,
            responses=OpenApiTypes.OBJECT,
            description=f"Existing {existing} keep working; the ones the new rules would refuse are "
            "flagged (`against_policy`) and their owners told once.",
        ),
    )


class PolicySettingsView(OrganizationApiView, APIView):
    """Read and change one group of the organisation's policy settings (`policy_update`, audited).

    Read with the inventory's authority (`inventory:read` for a credential); changed by an
    organisation owner or admin in person, after a recent sign-in (`policy.change`).
    Subclasses name the input serializer and the body they answer.
    """

    authz_actions = {"get": "inventory.read", "patch": "policy.change"}
    settings_serializer: type[serializers.Serializer]

    def body(self, organization) -> dict:
        raise NotImplementedError

    def get(self, request: Request, org_slug: str) -> Response:
        return Response(self.body(self.organization))

    def patch(self, request: Request, org_slug: str) -> Response:
        data = self.settings_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            policy_update(organization=self.organization, actor=request.user, **data.validated_data)
        except DjangoValidationError as exc:
            raise api_error(exc) from exc
        return Response(self.body(self.organization))


RUNTIME_RULES = ("require_allowed_ips_for_live", "default_rate_limit", "max_rate_limit")


class RuntimeRulesSerializer(serializers.Serializer):
    require_allowed_ips_for_live = serializers.BooleanField(required=False)
    default_rate_limit = RateLimitField(required=False)
    max_rate_limit = RateLimitField(required=False)


@policy_settings_schema(
    rules="runtime-policy rules", serializer=RuntimeRulesSerializer, existing="credentials"
)
class RuntimeRulesView(PolicySettingsView):
    """The organisation's rules on every credential's runtime policy: an allowlist on live ones,
    the default rate limit, the rate-limit ceiling."""

    settings_serializer = RuntimeRulesSerializer

    def body(self, organization) -> dict:
        policy = policy_for(organization)
        body = {name: getattr(policy, name) for name in RUNTIME_RULES}
        # As the inventory's `?flag=against_policy` counts them: working, not expired.
        flagged = inventory_queryset(organization, InventoryFilters(flag="against_policy"))
        body["flagged_credentials"] = flagged.count()
        return body
