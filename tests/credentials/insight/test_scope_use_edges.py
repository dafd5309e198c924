"""Usage insight: "Scopes never used in 30 days" and "Narrow to what is used" must never remove a
scope the credential's integration used in the window (docs/usage.md)."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials import usage
from credentials.api_keys.services import api_key_create, api_key_rotate
from tests.factories import ScopeFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_usage_counters")]


def bearer(plaintext: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")


def test_narrow_to_used_keeps_a_scope_the_key_used_at_a_resource_server_through_keys_verify(
    organization, owner, owner_client, scopes
):
    ScopeFactory(name="usage:read")
    ScopeFactory(name="api_keys:verify")
    api_key, plaintext = api_key_create(
        organization=organization,
        name="billing export",
        owner=owner,
        scopes=["orders:read", "usage:read"],
        actor=owner,
    )
    _verifier, verifier = api_key_create(
        organization=organization, name="orders API", owner=owner, scopes=["api_keys:verify"], actor=owner
    )
    # The customer's orders API verifies the key centrally on every request (its real use).
    for _ in range(5):
        response = bearer(verifier).post(
            "/api/v1/keys/verify", {"key": plaintext}, content_type="application/json"
        )
        assert response.json()["valid"] is True and "orders:read" in response.json()["scopes"]
    # Once, the integration also read its own usage from the portal.
    assert bearer(plaintext).get(f"/api/v1/orgs/acme/usage/?credential={api_key.key_id}").status_code == 200
    usage.rollup()

    owner_client.post(f"/orgs/acme/api-keys/{api_key.key_id}/scopes/narrow/")
    api_key.refresh_from_db()
    # orders:read was used (5 verifications in the window): narrowing must not remove it.
    assert "orders:read" in api_key.scopes, api_key.scopes


def test_narrow_to_used_keeps_a_scope_used_by_the_key_before_its_rotation(
    organization, owner, owner_client, scopes
):
    ScopeFactory(name="usage:read")
    ScopeFactory(name="inventory:read")
    old, old_plain = api_key_create(
        organization=organization,
        name="reporting",
        owner=owner,
        scopes=["inventory:read", "usage:read"],
        actor=owner,
    )
    # The integration reads the inventory every day...
    assert bearer(old_plain).get("/api/v1/orgs/acme/inventory/").status_code == 200
    usage.rollup()
    # ...its key is rotated (same name, owner, scopes), and the successor reads usage once.
    new, new_plain = api_key_rotate(api_key=old, actor=owner)
    assert bearer(new_plain).get(f"/api/v1/orgs/acme/usage/?credential={new.key_id}").status_code == 200
    usage.rollup()

    owner_client.post(f"/orgs/acme/api-keys/{new.key_id}/scopes/narrow/")
    new.refresh_from_db()
    # inventory:read was used minutes ago by the same integration: it is not "never used in 30 days".
    assert "inventory:read" in new.scopes, new.scopes
