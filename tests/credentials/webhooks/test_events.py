"""Lifecycle changes made through the real services reach subscribed endpoints, signed, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from credentials.api_keys.services import api_key_create, api_key_request, api_key_revoke, api_key_rotate
from credentials.governance.approvals import (
    credential_request_approve,
    credential_request_deny,
    credential_secret_issue,
)
from credentials.governance.reviews import credential_suspend
from credentials.webhooks.models import DeliveryState, WebhookDelivery
from portal.models import Membership
from portal.services.audit import audit_log
from portal.services.organizations import membership_remove
from tests.credentials.webhooks.conftest import deliver
from tests.factories import MembershipFactory, make_api_key
from tokens.clients.services import client_secret_revoke, client_secret_rotate, m2m_app_create, m2m_app_revoke

pytestmark = pytest.mark.django_db


def _types() -> list[str]:
    return list(WebhookDelivery.objects.order_by("id").values_list("event_type", flat=True))


def _key(organization, owner, **kwargs):
    return make_api_key(organization, owner, name="billing export", **kwargs)


def test_an_api_key_lifecycle_arrives_signed_at_the_receiver(
    organization, owner, scopes, receiver, make_endpoint
):
    _endpoint, secret = make_endpoint()
    key, plaintext = _key(organization, owner)
    successor, new_plaintext = api_key_rotate(api_key=key, actor=owner, overlap=timedelta(hours=1))
    api_key_revoke(api_key=successor, actor=owner, reason="no longer needed")
    assert _types() == ["credential.created", "credential.rotated", "credential.revoked"]

    assert "Delivered 3" in deliver()

    payloads = receiver.verified(secret)
    assert [p["type"] for p in payloads] == ["credential.created", "credential.rotated", "credential.revoked"]
    created, rotated, revoked = payloads
    assert created["organization"] == "acme"
    assert created["data"]["credential"] == {
        "kind": "api_key",
        "id": key.key_id,
        "name": "billing export",
        "owner": "owner@acme.test",
        "status": "active",
        "dashboard_url": f"http://127.0.0.1:8000/orgs/acme/api-keys/{key.key_id}/",
    }
    assert created["data"]["actor"] == "owner@acme.test"
    assert created["data"]["audit_action"] == "credentials.api_key.created"
    assert rotated["data"]["successor_id"] == successor.key_id
    assert revoked["data"]["credential"]["id"] == successor.key_id
    assert revoked["data"]["credential"]["status"] == "revoked"
    # Never a secret: neither key appears in any body.
    for request in receiver.received:
        assert plaintext.encode() not in request.body and new_plaintext.encode() not in request.body
        assert request.path == "/hooks/portal"
        assert request.headers["Content-Type"] == "application/json"
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {DeliveryState.SUCCEEDED}


def test_an_m2m_application_lifecycle(organization, owner, scopes, receiver, make_endpoint):
    _endpoint, secret = make_endpoint()
    app, client_secret = m2m_app_create(
        organization=organization, name="orders sync", owner=owner, scopes=["orders:read"], actor=owner
    )
    new_secret_row, new_secret = client_secret_rotate(
        application=app, actor=owner, overlap=timedelta(hours=1)
    )
    client_secret_revoke(secret=app.secrets.exclude(pk=new_secret_row.pk).get(), actor=owner)
    m2m_app_revoke(application=app, actor=owner)
    deliver()
    payloads = receiver.verified(secret)
    assert [(p["type"], p["data"]["audit_action"]) for p in payloads] == [
        ("credential.created", "tokens.m2m_app.created"),
        ("credential.rotated", "tokens.m2m_app.secret_rotated"),
        ("credential.revoked", "tokens.m2m_app.secret_revoked"),
        ("credential.revoked", "tokens.m2m_app.revoked"),
    ]
    assert {p["data"]["credential"]["id"] for p in payloads} == {app.client_id}
    assert payloads[0]["data"]["credential"]["kind"] == "m2m_app"
    for request in receiver.received:
        assert client_secret.encode() not in request.body and new_secret.encode() not in request.body


def test_requests_approved_denied_and_the_secret_issued_later(
    organization, owner, admin_user, scopes, receiver, make_endpoint
):
    _endpoint, secret = make_endpoint()
    approved_key, approved_request = api_key_request(
        organization=organization, name="needs ok", owner=owner, scopes=["orders:read"], requester=owner,
        justification="nightly export",
    )  # fmt: skip
    denied_key, denied_request = api_key_request(
        organization=organization, name="not ok", owner=owner, scopes=["orders:read"], requester=owner,
        justification="why not",
    )  # fmt: skip
    # A pending credential holds no secret: no `created` event yet.
    assert _types() == []
    credential_request_approve(request=approved_request, actor=admin_user)
    credential_request_deny(request=denied_request, actor=admin_user, comment="use the shared key")
    credential_secret_issue(credential=approved_key, actor=owner)
    deliver()
    payloads = receiver.verified(secret)
    assert [(p["type"], p["data"]["credential"]["id"]) for p in payloads] == [
        ("credential.approved", approved_key.key_id),
        ("credential.denied", denied_key.key_id),
        ("credential.created", approved_key.key_id),
    ]
    assert payloads[0]["data"]["actor"] == "admin@acme.test"
    assert payloads[0]["data"]["request_id"] == approved_request.pk
    assert payloads[1]["data"]["credential"]["status"] == "denied"
    assert "comment" not in payloads[1]["data"]  # free text a person typed stays in the portal
    assert payloads[2]["data"]["credential"]["status"] == "active"
    # docs/webhooks.md: the secret issued after approval names its request and the request's type.
    assert payloads[2]["data"]["request_id"] == approved_request.pk
    assert payloads[2]["data"]["request_type"] == "create"


def test_orphaned_suspended_and_leaked(organization, owner, member, scopes, receiver, make_endpoint):
    _endpoint, secret = make_endpoint()
    key, _plaintext = _key(organization, member)
    other, _ = api_key_create(organization=organization, name="other", owner=owner, scopes=[], actor=owner)
    WebhookDelivery.objects.all().delete()
    membership_remove(membership=Membership.objects.get(user=member, organization=organization), actor=owner)
    credential_suspend(credential=other, actor=owner, reason="manual")
    with transaction.atomic():  # what the leaks service writes, in its own transaction
        audit_log(action="credentials.api_key.leaked", actor=None, organization=organization, target=key)
    deliver()
    payloads = receiver.verified(secret)
    assert [(p["type"], p["data"]["credential"]["id"]) for p in payloads] == [
        ("credential.orphaned", key.key_id),
        ("credential.suspended", other.key_id),
        ("credential.leaked", key.key_id),
    ]
    assert payloads[1]["data"]["reason"] == "manual"
    assert payloads[2]["data"]["actor"] is None


def test_expiring_comes_from_the_notices_command_once(organization, owner, scopes, receiver, make_endpoint):
    _endpoint, secret = make_endpoint(["expiring"])
    key, _ = _key(organization, owner, expires_at=timezone.now() + timedelta(days=5))
    call_command("send_credential_notices")
    call_command("send_credential_notices")  # a second run sends no second notice, so no second event
    deliver()
    (payload,) = receiver.verified(secret)
    assert payload["type"] == "credential.expiring"
    assert payload["data"]["credential"]["id"] == key.key_id
    assert payload["data"]["expires_at"] == key.expires_at.isoformat()
    assert payload["data"]["notice"] == "expiring_14d"


def test_only_subscribed_active_endpoints_of_the_credentials_organisation(
    organization, other_organization, owner, outsider, scopes, receiver, make_endpoint
):
    revoked_only, _ = make_endpoint(["revoked"])
    everything, _ = make_endpoint()
    disabled, _ = make_endpoint()
    disabled.active = False
    disabled.save()
    other_orgs, _ = make_endpoint(org=other_organization, actor=outsider)
    key, _ = _key(organization, owner)
    api_key_revoke(api_key=key, actor=owner, reason="x")
    rows = list(WebhookDelivery.objects.values_list("endpoint_id", "event_type").order_by("id"))
    assert rows == [
        (everything.pk, "credential.created"),
        (revoked_only.pk, "credential.revoked"),
        (everything.pk, "credential.revoked"),
    ]
    # One event, one id, whichever endpoints receive it.
    revoked_ids = set(
        WebhookDelivery.objects.filter(event_type="credential.revoked").values_list("event_id", flat=True)
    )
    assert len(revoked_ids) == 1
    assert not WebhookDelivery.objects.filter(endpoint__in=[disabled, other_orgs]).exists()


def test_a_rolled_back_change_queues_nothing(organization, owner, scopes, make_endpoint):
    make_endpoint()
    with pytest.raises(RuntimeError), transaction.atomic():
        _key(organization, owner)
        assert WebhookDelivery.objects.count() == 1  # written in the same transaction…
        raise RuntimeError("the request failed after the service ran")
    assert WebhookDelivery.objects.count() == 0  # …so it is gone with it


def test_a_refused_service_call_queues_nothing(organization, owner, scopes, make_endpoint):
    from django.core.exceptions import ValidationError

    make_endpoint()
    key, _ = _key(organization, owner)
    api_key_revoke(api_key=key, actor=owner, reason="x")
    before = WebhookDelivery.objects.count()
    with pytest.raises(ValidationError):
        api_key_revoke(api_key=key, actor=owner, reason="again")
    assert WebhookDelivery.objects.count() == before


def test_unmapped_audit_actions_queue_nothing(organization, owner, scopes, make_endpoint):
    make_endpoint()
    key, _ = _key(organization, owner)
    WebhookDelivery.objects.all().delete()
    with transaction.atomic():
        audit_log(
            action="credentials.api_key.recertified", actor=owner, organization=organization, target=key
        )
        audit_log(action="portal.membership.role_changed", actor=owner, organization=organization)
    MembershipFactory(organization=organization)
    assert WebhookDelivery.objects.count() == 0


def _public_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_private_key_jwt_first_key_is_created_later_keys_rotate_and_revoke(
    organization, owner, admin_user, member, scopes, receiver, make_endpoint
):
    from tokens.clients.services import client_public_key_add, client_public_key_revoke, m2m_app_request

    _endpoint, secret = make_endpoint()
    application, request = m2m_app_request(
        organization=organization,
        name="keyed",
        owner=member,
        requester=member,
        justification="needed",
        auth_method="private_key_jwt",
    )
    credential_request_approve(request=request, actor=admin_user)
    first = client_public_key_add(application=application, jwk_or_pem=_public_pem(), actor=member)
    second = client_public_key_add(application=application, jwk_or_pem=_public_pem(), actor=member)
    client_public_key_revoke(public_key=first, actor=member)
    deliver()
    payloads = receiver.verified(secret)
    assert [(p["type"], p["data"]["audit_action"]) for p in payloads] == [
        ("credential.approved", "credentials.request.approved"),
        ("credential.created", "tokens.m2m_app.public_key_added"),  # the first key activates it
        ("credential.rotated", "tokens.m2m_app.public_key_added"),
        ("credential.revoked", "tokens.m2m_app.public_key_revoked"),
    ]
    assert [p["data"].get("kid") for p in payloads] == [None, first.kid, second.kid, first.kid]
    assert payloads[0]["data"]["request_type"] == "create"
    assert payloads[1]["data"]["credential"]["status"] == "active"
    assert payloads[1]["data"]["request_id"] == request.pk
    assert payloads[1]["data"]["request_type"] == "create"


def test_a_real_leak_report_sends_revoked_and_leaked_without_the_secret_or_reasons(
    organization, owner, scopes, receiver, make_endpoint
):
    from credentials.leaks.services import ReportedToken, leak_report_receive

    _endpoint, secret = make_endpoint()
    key, plaintext = _key(organization, owner)
    WebhookDelivery.objects.all().delete()
    where = "https://github.com/acme/app/blob/main/.env"
    leak_report_receive(reported=ReportedToken(token=plaintext, token_type="portal_api_key_type", url=where))
    deliver()
    payloads = receiver.verified(secret)
    assert [p["type"] for p in payloads] == ["credential.revoked", "credential.leaked"]
    leaked = payloads[1]["data"]
    assert leaked["credential"]["id"] == key.key_id and leaked["credential"]["status"] == "revoked"
    assert leaked["leak"]["action"] == "revoked" and leaked["actor"] is None
    assert leaked["leak"]["found_at"] == where  # the public place to clean up
    assert "request_type" not in leaked  # the reporter's token type is not a request type
    for request in receiver.received:
        body = request.body.decode()
        assert plaintext not in body and "portal_api_key_type" not in body
        assert "reported leaked in public" not in body  # the revocation's reason text stays in the portal


def test_the_documented_credential_kinds_are_the_ones_sent():
    """docs/webhooks.md names every kind whose changes send events (federated identities too)."""
    from pathlib import Path

    from credentials.governance.registry import all_kinds

    docs = (Path(__file__).resolve().parents[3] / "docs" / "webhooks.md").read_text()
    [line] = [line for line in docs.splitlines() if "`data.credential.kind` is" in line]
    for kind in all_kinds():
        if kind.webhook_events:
            assert f"`{kind.key}`" in line, kind.key
            for verb in kind.webhook_events:
                assert f".{verb}`" in docs, (kind.key, verb)
