"""The webhook REST API: owners, admins and keys with webhooks:manage; secrets once; tenancy as 404."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from credentials.api_keys.services import api_key_create
from credentials.webhooks.models import WebhookDelivery, WebhookEndpoint
from portal.models import AuditEvent, Membership, Role
from tests.credentials.webhooks.conftest import deliver
from tests.factories import ScopeFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/orgs/acme/webhooks/"


def test_a_key_manages_endpoints_end_to_end(machine, admin_user, receiver):
    response = machine.post(
        BASE, {"url": receiver.url, "event_types": ["revoked", "leaked"]}, "application/json"
    )
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and body["event_types"] == ["leaked", "revoked"]
    endpoint_url = f"{BASE}{body['id']}/"
    shown = machine.get(endpoint_url).json()
    assert "secret" not in shown and shown["secret_hint"] == secret[:10]
    assert secret not in machine.get(BASE).content.decode()
    # The key acts for its owner, as in the audit trail.
    assert AuditEvent.objects.get(action="credentials.webhook.created").actor == admin_user

    assert machine.post(f"{endpoint_url}ping/").status_code == 202
    receiver.statuses.append(500)
    deliver()
    (delivery,) = machine.get(f"{endpoint_url}deliveries/").json()["results"]
    assert (delivery["event_type"], delivery["state"], delivery["last_status_code"]) == (
        "webhook.ping",
        "failed",
        500,
    )
    retry = f"{endpoint_url}deliveries/{delivery['id']}/retry/"
    assert machine.post(retry).status_code == 202
    deliver()
    assert machine.post(retry).status_code == 409  # delivered now
    assert len(receiver.verified(secret)) == 2

    rotated = machine.post(f"{endpoint_url}rotate-secret/", {"overlap_hours": 0}, "application/json")
    assert rotated.status_code == 201 and rotated.json()["secret"] != secret
    assert rotated["Cache-Control"] == "no-store"
    patched = machine.patch(endpoint_url, {"active": False, "event_types": ["created"]}, "application/json")
    assert patched.json()["active"] is False and patched.json()["event_types"] == ["created"]
    assert machine.delete(endpoint_url).status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"url": "http://hooks.example.com/", "event_types": ["created"]}, "url"),
        ({"url": "https://10.0.0.1/", "event_types": ["created"]}, "url"),
        ({"url": "https://hooks.example.com/", "event_types": []}, "event_types"),
        ({"url": "https://hooks.example.com/", "event_types": ["exploded"]}, "event_types"),
        ({"url": "https://hooks.example.com/"}, "event_types"),
        ({"event_types": ["created"]}, "url"),
        ({"url": ["x"], "event_types": "created"}, "url"),
    ],
)
def test_bad_input_is_a_400_with_the_field(settings, machine, data, field):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = False
    response = machine.post(BASE, data, "application/json")
    assert response.status_code == 400 and field in response.json(), response.content


def test_who_may_call(organization, other_organization, owner, member, outsider, make_endpoint, admin_user):
    endpoint, _ = make_endpoint()
    ScopeFactory(name="webhooks:manage")
    _row, weak_key = api_key_create(
        organization=organization, name="weak", owner=owner, scopes=[], actor=owner
    )
    _row, foreign_key = api_key_create(
        organization=other_organization,
        name="foreign",
        owner=outsider,
        scopes=["webhooks:manage"],
        actor=outsider,
    )
    assert Client().get(BASE).status_code == 401
    assert Client(HTTP_AUTHORIZATION=f"Bearer {weak_key}").get(BASE).status_code == 403
    assert Client(HTTP_AUTHORIZATION=f"Bearer {foreign_key}").get(BASE).status_code == 404
    # A member's own key may not even hold the scope (portal.authz)...
    with pytest.raises(ValidationError) as refused:
        api_key_create(
            organization=organization, name="mine", owner=member, scopes=["webhooks:manage"], actor=member
        )
    assert refused.value.error_dict["scopes"][0].code == "scope_beyond_owner"
    # ...and one that does (made while they were an admin) gives the member no manager's power.
    Membership.objects.filter(user=member, organization=organization).update(role=Role.ADMIN)
    _row, members_key = api_key_create(
        organization=organization, name="mine", owner=member, scopes=["webhooks:manage"], actor=member
    )
    Membership.objects.filter(user=member, organization=organization).update(role=Role.MEMBER)
    members_machine = Client(HTTP_AUTHORIZATION=f"Bearer {members_key}")
    assert members_machine.get(BASE).status_code == 403
    response = members_machine.post(
        BASE, {"url": "https://hooks.example.com/x", "event_types": ["leaked"]}, "application/json"
    )
    assert response.status_code == 403
    assert members_machine.delete(f"{BASE}{endpoint.pk}/").status_code == 403
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    members_session = Client()
    members_session.force_login(member)
    assert members_session.get(BASE).status_code == 403
    outsiders_session = Client()
    outsiders_session.force_login(outsider)
    assert outsiders_session.get(BASE).status_code == 404
    assert outsiders_session.get(f"/api/v1/orgs/globex/webhooks/{endpoint.pk}/").status_code == 404
    owners_session = Client()
    owners_session.force_login(owner)
    assert [e["id"] for e in owners_session.get(BASE).json()["results"]] == [endpoint.pk]


def test_a_session_needs_a_recent_sign_in_to_create_or_rotate(settings, owner, make_endpoint, receiver):
    endpoint, _ = make_endpoint()
    browser = Client(enforce_csrf_checks=False)
    browser.force_login(owner)
    settings.PORTAL_STEP_UP_SECONDS = 0
    response = browser.post(BASE, {"url": receiver.url, "event_types": ["created"]}, "application/json")
    assert response.status_code == 403 and response.json()["detail"].startswith("Confirm it is you")
    response = browser.post(f"{BASE}{endpoint.pk}/rotate-secret/", {}, "application/json")
    assert response.status_code == 403
    assert WebhookEndpoint.objects.count() == 1 and not WebhookDelivery.objects.exists()


def test_a_key_loses_access_when_its_owner_stops_being_a_manager(machine, organization, admin_user):
    assert machine.get(BASE).status_code == 200
    Membership.objects.filter(user=admin_user, organization=organization).update(role=Role.MEMBER)
    assert machine.get(BASE).status_code == 403
