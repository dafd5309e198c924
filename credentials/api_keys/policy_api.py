"""The policy on kinds over REST: `/api/v1/orgs/<slug>/policy/api-keys/` (docs/choosing.md)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from credentials.api_keys import kind_policy
from credentials.governance.models import NewApiKeys
from credentials.governance.org_policy import policy_for, policy_update
from portal.api.access import OrganizationApiView


class ApiKeyPolicySerializer(serializers.Serializer):
    new_live_api_keys = serializers.ChoiceField(choices=NewApiKeys.choices, required=False)
    new_live_api_keys_max_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True
    )
    new_test_api_keys = serializers.ChoiceField(choices=NewApiKeys.choices, required=False)
    new_test_api_keys_max_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True
    )


def _policy_body(organization) -> dict:
    policy = policy_for(organization)
    body = {name: getattr(policy, name) for name in kind_policy.POLICY_FIELDS}
    body["flagged_api_keys"] = kind_policy.flagged_api_key_count(organization)
    return body


class ApiKeyPolicyView(OrganizationApiView, APIView):
    """The policy on kinds: whether new live and test API keys are allowed (docs/choosing.md).

    Read with the inventory's authority (`inventory:read` for a credential); changed by an
    organisation owner or admin in person, after a recent sign-in (`policy.change`).
    """

    authz_actions = {"get": "inventory.read", "patch": "policy.change"}

    @extend_schema(summary="The organisation's rules for new API keys", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, org_slug: str) -> Response:
        return Response(_policy_body(self.organization))

    @extend_schema(
        summary="Change the organisation's rules for new API keys",
        request=ApiKeyPolicySerializer,
        responses=OpenApiTypes.OBJECT,
        description="Existing keys keep working; the ones the new rules would refuse are flagged "
        "(`against_policy`) and their owners told once.",
    )
    def patch(self, request: Request, org_slug: str) -> Response:
        data = ApiKeyPolicySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            policy_update(organization=self.organization, actor=request.user, **data.validated_data)
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(
                exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
            ) from exc
        return Response(_policy_body(self.organization))
