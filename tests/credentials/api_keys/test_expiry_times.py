"""When an API key expires soon and when it has expired, judged alike on every surface.

The pages' "Expires soon" badge uses the inventory's `expiring` window (14 days), as the
attention hub, the notices and the webhooks do; at its `expires_at` instant a key is expired
for verification, the keys API and the inventory at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from credentials.lifetimes import EXPIRING_WITHIN

pytestmark = pytest.mark.django_db


def _flagged(client) -> list[str]:
    return [row["id"] for row in client.get("/api/v1/orgs/acme/inventory/?flag=expiring").json()["results"]]


def _badges(client, key) -> tuple[bool, bool]:
    listed = client.get("/orgs/acme/api-keys/").content.decode()
    detail = client.get(f"/orgs/acme/api-keys/{key.key_id}/").content.decode()
    return "Expires soon" in listed, "Expires soon" in detail


def test_a_key_the_inventory_flags_as_expiring_has_the_badge(owner_client, make_key):
    # Ten days: inside the inventory's window, beyond the 7 days the badge once used.
    key, _ = make_key(name="ten-days", expires_at=timezone.now() + timedelta(days=10))
    assert _flagged(owner_client) == [key.key_id]
    assert _badges(owner_client, key) == (True, True)
    assert key.expires_soon()


def test_a_key_beyond_the_window_has_neither(owner_client, make_key):
    key, _ = make_key(name="twenty-days", expires_at=timezone.now() + EXPIRING_WITHIN + timedelta(days=6))
    assert _flagged(owner_client) == []
    assert _badges(owner_client, key) == (False, False)
    assert not key.expires_soon()


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_the_expiry_instant_is_judged_alike(owner_client, make_key, monkeypatch, offset):
    key, raw = make_key(expires_at=timezone.now() + timedelta(hours=1))
    at = key.expires_at + timedelta(seconds=offset)
    monkeypatch.setattr(timezone, "now", lambda: at)
    who = Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {raw}")
    listed = owner_client.get("/api/v1/orgs/acme/api-keys/").json()["results"]
    inventory = owner_client.get("/api/v1/orgs/acme/inventory/?status=expired").json()["results"]
    expired = offset >= 0
    assert (who.status_code == 401) is expired
    assert (listed[0]["status"] == "expired") is expired
    assert ([r["id"] for r in inventory] == [key.key_id]) is expired
