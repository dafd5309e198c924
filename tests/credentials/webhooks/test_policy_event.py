"""A runtime policy change (either kind) is one `credential.policy_changed` event, before and after."""

from __future__ import annotations

import pytest

from credentials.api_keys.services import api_key_create
from credentials.governance.edits import credential_policy_set
from credentials.webhooks.models import WebhookDelivery
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.django_db


def test_policy_changes_of_both_kinds_are_webhook_events(organization, owner, scopes, make_endpoint):
    make_endpoint(["policy_changed"])
    api_key, _ = api_key_create(organization=organization, name="k", owner=owner, scopes=[], actor=owner)
    app, _ = m2m_app_create(organization=organization, name="a", owner=owner, actor=owner)
    credential_policy_set(credential=api_key, actor=owner, allowed_ips=["203.0.113.0/24"])
    credential_policy_set(credential=app, actor=owner, rate_limit={"requests": 10, "per_seconds": 60})
    credential_policy_set(
        credential=app, actor=owner, rate_limit={"requests": 10, "per_seconds": 60}
    )  # no-op
    deliveries = list(WebhookDelivery.objects.order_by("id"))
    assert [d.event_type for d in deliveries] == ["credential.policy_changed"] * 2
    first, second = (d.payload["data"] for d in deliveries)
    assert first["allowed_ips"] == {"from": [], "to": ["203.0.113.0/24"]}
    assert second["rate_limit"] == {"from": None, "to": {"requests": 10, "per_seconds": 60}}
