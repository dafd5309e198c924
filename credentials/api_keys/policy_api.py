"""The policy on kinds over REST: `/api/v1/orgs/<slug>/policy/api-keys/` (docs/choosing.md)."""

from __future__ import annotations

from rest_framework import serializers

from credentials.api_keys import kind_policy
from credentials.governance.models import NewApiKeys
from credentials.governance.org_policy import policy_for
from credentials.governance.policy_api import PolicySettingsView, policy_settings_schema


class ApiKeyPolicySerializer(serializers.Serializer):
    new_live_api_keys = serializers.ChoiceField(choices=NewApiKeys.choices, required=False)
    new_live_api_keys_max_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True
    )
    new_test_api_keys = serializers.ChoiceField(choices=NewApiKeys.choices, required=False)
    new_test_api_keys_max_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True
    )


@policy_settings_schema(rules="rules for new API keys", serializer=ApiKeyPolicySerializer, existing="keys")
class ApiKeyPolicyView(PolicySettingsView):
    """The policy on kinds: whether new live and test API keys are allowed (docs/choosing.md)."""

    settings_serializer = ApiKeyPolicySerializer

    def body(self, organization) -> dict:
        policy = policy_for(organization)
        body = {name: getattr(policy, name) for name in kind_policy.POLICY_FIELDS}
        body["flagged_api_keys"] = kind_policy.flagged_api_key_count(organization)
        return body
