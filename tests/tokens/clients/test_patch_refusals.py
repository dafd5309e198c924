"""REST PATCH: what it cannot change is refused, not ignored with a 200; what a client read and sends
back unchanged is fine. State refusals name the state."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db
BASE = "/api/v1/orgs/acme/m2m-apps/"


def _create(client) -> dict:
    response = client.post(
        BASE, json.dumps({"name": "Billing", "scopes": ["orders:read"]}), "application/json"
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize(
    "body",
    [
        {"token_lifetime": 3600},
        {"audiences": ["https://orders.example.com"]},
        {"token_endpoint_auth_method": "private_key_jwt"},
    ],
    ids=["token_lifetime", "audiences", "auth_method"],
)
def test_a_patch_of_a_field_it_cannot_change_is_refused_not_a_silent_200(owner_client, scopes, body):
    # M2MAppUpdateSerializer knows name, description, owner, scopes and the policy fields; DRF
    # drops any other key, so the client is told 200 with its change silently not made.
    app = _create(owner_client)
    response = owner_client.patch(f"{BASE}{app['id']}/", json.dumps(body), "application/json")
    field = next(iter(body))
    after = owner_client.get(f"{BASE}{app['id']}/").json()
    assert response.status_code == 400, (response.status_code, after[field])
    assert response.json()[field] == ["This field cannot be changed here."]
    assert after[field] != body[field]


def test_a_patch_that_sends_back_what_it_read_with_one_change_succeeds(owner_client, scopes, make_key):
    app = _create(owner_client)
    read = owner_client.get(f"{BASE}{app['id']}/").json()
    response = owner_client.patch(
        f"{BASE}{app['id']}/", json.dumps({**read, "name": "Renamed"}), "application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Renamed"

    key, _ = make_key(name="orders")
    keys = "/api/v1/orgs/acme/api-keys/"
    read = owner_client.get(f"{keys}{key.key_id}/").json()
    response = owner_client.patch(
        f"{keys}{key.key_id}/", json.dumps({**read, "name": "renamed"}), "application/json"
    )
    assert response.status_code == 200, response.content
    changed = owner_client.patch(
        f"{keys}{key.key_id}/", json.dumps({"environment": "test"}), "application/json"
    )
    assert changed.status_code == 400 and "environment" in changed.json()


def test_rotating_a_suspended_application_does_not_say_it_is_revoked(owner_client, scopes):
    # tokens/clients/services.py client_secret_rotate: every inactive state gets "A revoked application …".
    app = _create(owner_client)
    M2MApplication.objects.filter(pk=app["id"]).update(
        status="suspended", suspended_at=timezone.now(), suspension_reason="manual"
    )
    response = owner_client.post(f"{BASE}{app['id']}/rotate-secret/", "{}", "application/json")
    assert response.status_code == 409 and response.json()["code"] == "inactive"
    assert "revoked" not in response.json()["detail"], response.json()["detail"]
