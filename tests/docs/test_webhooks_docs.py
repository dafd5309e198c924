"""docs/webhooks.md: the REST table, the payloads and the request headers, on a real delivery."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client

from credentials.api_keys.services import api_key_rotate
from tests.credentials.webhooks.conftest import Receiver
from tests.factories import ScopeFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True
    settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS = 1
    with Receiver() as server:
        yield server


@pytest.fixture
def machine(organization, owner, scopes):
    ScopeFactory(name="webhooks:manage")
    _row, key = make_api_key(organization, owner, name="automation", scopes=["webhooks:manage"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def deliver() -> str:
    out = io.StringIO()
    call_command("deliver_webhooks", "--once", stdout=out)
    return out.getvalue()


def test_the_rest_table(organization, machine, receiver):
    base = f"/api/v1/orgs/{organization.slug}/webhooks/"
    created = machine.post(
        base,
        {"url": receiver.url, "event_types": ["leaked", "revoked"], "description": "d"},
        content_type="application/json",
    )
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    body = created.json()
    assert body["secret"].startswith("whsec_")
    wid = body["id"]
    listed = machine.get(base).json()
    assert "secret" not in listed["results"][0] and listed["results"][0]["secret_hint"].startswith("whsec_")
    assert machine.get(f"{base}{wid}/").status_code == 200
    patched = machine.patch(
        f"{base}{wid}/",
        {"event_types": ["rotated"], "description": "x", "active": True},
        content_type="application/json",
    )
    assert patched.status_code == 200 and patched.json()["event_types"] == ["rotated"]
    rotated = machine.post(
        f"{base}{wid}/rotate-secret/", {"overlap_hours": 24}, content_type="application/json"
    )
    assert rotated.status_code == 201 and rotated.json()["secret"].startswith("whsec_")
    ping = machine.post(f"{base}{wid}/ping/", {}, content_type="application/json")
    assert ping.status_code == 202
    deliveries = machine.get(f"{base}{wid}/deliveries/")
    assert deliveries.status_code == 200
    delivery_id = deliveries.json()["results"][0]["id"]
    # not failed: 409
    assert (
        machine.post(
            f"{base}{wid}/deliveries/{delivery_id}/retry/", {}, content_type="application/json"
        ).status_code
        == 409
    )
    assert machine.delete(f"{base}{wid}/").status_code == 204


def test_a_rotated_keys_payload_and_headers(organization, owner, member, machine, receiver, scopes):
    base = f"/api/v1/orgs/{organization.slug}/webhooks/"
    machine.post(
        base, {"url": receiver.url, "event_types": ["rotated"]}, content_type="application/json"
    ).json()["secret"]
    row, _key = make_api_key(organization, member, name="billing export", scopes=["orders:read"])

    successor, _plain = api_key_rotate(api_key=row, actor=owner, overlap=timedelta(hours=24))
    deliver()
    assert len(receiver.received) == 1
    request = receiver.received[0]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "IdentityPortal-Webhooks/1"
    assert headers["portal-webhook-event"] == "credential.rotated"
    assert re.fullmatch(r"v1=[0-9a-f]{64}", headers["portal-webhook-signature"])
    payload = request.json
    assert set(payload) == {"id", "type", "created_at", "organization", "data"}
    assert payload["id"] == headers["portal-webhook-id"]
    data = payload["data"]
    assert set(data["credential"]) == {"kind", "id", "name", "owner", "status", "dashboard_url"}
    assert data["credential"]["id"] == row.key_id
    assert data["credential"]["dashboard_url"].endswith(f"/orgs/{organization.slug}/api-keys/{row.key_id}/")
    assert data["actor"] == owner.email and data["audit_action"] == "credentials.api_key.rotated"
    assert data["successor_id"] == successor.key_id and data["previous_secret_expires_at"]


def test_ping_payload(organization, owner, machine, receiver):
    base = f"/api/v1/orgs/{organization.slug}/webhooks/"
    wid = machine.post(
        base, {"url": receiver.url, "event_types": ["rotated"]}, content_type="application/json"
    ).json()["id"]
    machine.post(f"{base}{wid}/ping/", {}, content_type="application/json")
    deliver()
    payload = receiver.received[0].json
    assert payload["type"] == "webhook.ping"
    assert payload["data"] == {"endpoint": receiver.url, "actor": owner.email}


def test_event_types_are_bare_names(organization, machine, receiver):
    """The REST table says `event_types: [...]`; the Events table names them `credential.…`."""
    base = f"/api/v1/orgs/{organization.slug}/webhooks/"
    response = machine.post(
        base, {"url": receiver.url, "event_types": ["credential.revoked"]}, content_type="application/json"
    )
    assert response.status_code == 400  # only "revoked" is accepted: the docs' curl is right


def test_limits_and_member_key(organization, member, machine, receiver, scopes):
    """docs/webhooks.md:32 and :38-41."""
    base = f"/api/v1/orgs/{organization.slug}/webhooks/"
    ids = []
    for n in range(20):
        r = machine.post(
            base,
            {"url": f"https://hooks{n}.example.com/p", "event_types": ["revoked"]},
            content_type="application/json",
        )
        assert r.status_code == 201, r.content
        ids.append(r.json()["id"])
    over = machine.post(
        base,
        {"url": "https://hooks99.example.com/p", "event_types": ["revoked"]},
        content_type="application/json",
    )
    assert over.status_code in (400, 409), over.content
    statuses = [
        machine.post(f"{base}{ids[0]}/ping/", {}, content_type="application/json").status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [202] * 5 and statuses[5] != 202, statuses
    _row, member_key = make_api_key(organization, member, name="m", scopes=["orders:read"])
    # a member's key cannot even hold the scope; with only another scope it is 403, never 200
    assert Client(HTTP_AUTHORIZATION=f"Bearer {member_key}").get(base).status_code == 403
