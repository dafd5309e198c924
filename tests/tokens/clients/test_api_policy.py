"""Runtime policy (IP allowlist, rate limit) over the M2M applications REST API, like the API keys'."""

from __future__ import annotations

import pytest

from portal.models import AuditEvent
from tests.tokens.clients.test_api import create, token_status, url

pytestmark = pytest.mark.django_db


def test_policy_is_created_shown_normalised_and_enforced_at_the_token_endpoint(owner_client, scopes):
    response = create(
        owner_client,
        allowed_ips=["203.0.113.0/24", "2001:db8::/32", "198.51.100.1"],
        rate_limit={"requests": 100, "per_seconds": 60},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["allowed_ips"] == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.1/32"]
    assert body["rate_limit"] == {"requests": 100, "per_seconds": 60}
    shown = owner_client.get(url(body["id"])).json()
    assert shown["allowed_ips"] == body["allowed_ips"] and shown["rate_limit"] == body["rate_limit"]
    # The test client calls from 127.0.0.1: outside the list, so no token (RFC 6749 §5.2).
    assert token_status(body["client_id"], body["client_secret"]) == 400

    plain = create(owner_client, name="Plain").json()
    assert plain["allowed_ips"] == [] and plain["rate_limit"] is None
    assert token_status(plain["client_id"], plain["client_secret"]) == 200


def test_patch_changes_the_policy_audited_and_at_once(owner_client, scopes):
    body = create(owner_client).json()
    assert token_status(body["client_id"], body["client_secret"]) == 200

    response = owner_client.patch(url(body["id"]), {"allowed_ips": ["192.0.2.0/24"]}, "application/json")
    assert response.status_code == 200, response.content
    assert response.json()["allowed_ips"] == ["192.0.2.0/24"]
    assert token_status(body["client_id"], body["client_secret"]) == 400
    assert AuditEvent.objects.filter(
        action="tokens.m2m_app.policy_changed", target_id=str(body["id"])
    ).exists()

    response = owner_client.patch(
        url(body["id"]), {"allowed_ips": [], "rate_limit": None}, "application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["allowed_ips"] == [] and response.json()["rate_limit"] is None
    assert token_status(body["client_id"], body["client_secret"]) == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allowed_ips", ["10.0.0.1/8"]),  # host bits set
        ("allowed_ips", ["not-an-ip"]),
        ("allowed_ips", [f"10.0.{i // 256}.{i % 256}/32" for i in range(101)]),
        ("rate_limit", {"requests": 0, "per_seconds": 60}),
        ("rate_limit", {"requests": 10}),
    ],
)
def test_bad_policy_is_a_field_error_on_create_and_patch(owner_client, scopes, field, value):
    response = create(owner_client, **{field: value})
    assert response.status_code == 400 and field in response.json(), response.content
    app_id = create(owner_client, name="Other").json()["id"]
    response = owner_client.patch(url(app_id), {field: value}, "application/json")
    assert response.status_code == 400 and field in response.json(), response.content


def test_a_member_cannot_change_the_policy_of_someone_elses_application(owner_client, member_client, scopes):
    app_id = create(owner_client).json()["id"]
    response = member_client.patch(url(app_id), {"allowed_ips": []}, "application/json")
    assert response.status_code in (403, 404)
    assert response.json()["code"]


def test_a_stale_session_must_step_up_to_change_the_policy(settings, owner_client, scopes):
    app_id = create(owner_client).json()["id"]
    settings.PORTAL_STEP_UP_SECONDS = 0
    response = owner_client.patch(
        url(app_id), {"rate_limit": {"requests": 5, "per_seconds": 1}}, "application/json"
    )
    assert response.status_code == 403 and response.json()["code"] == "step_up_required"
