"""A leaked-secret report reaches the organisation's webhook receiver: what was done, then the leak.

The report is a signed GitHub-style alert POSTed to the real endpoint; the deliveries are sent
by the real sender to the local receiver of tests/credentials/webhooks/conftest.py and verified there.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from credentials.governance.models import LeakedCredentialAction
from credentials.governance.org_policy import policy_update
from credentials.webhooks.models import WebhookDelivery
from tests.credentials.governance.conftest import Kit
from tests.credentials.webhooks.conftest import deliver
from tests.support.secret_scanning import keys_document, sign

pytestmark = pytest.mark.django_db

URL = "/api/v1/secret-scanning/reports"
LEAK_URL = "https://github.com/octocat/Hello-World/blob/1234567/.env"


@pytest.fixture
def scanner(settings):
    key = ec.generate_private_key(ec.SECP256R1())
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = keys_document(("gh-1", key))
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE = ""
    return key


def report(client, scanner, secret: str):
    body = json.dumps(
        [{"token": secret, "type": "identity_portal_key", "url": LEAK_URL, "source": "content"}]
    ).encode()
    headers = {"Github-Public-Key-Identifier": "gh-1", "Github-Public-Key-Signature": sign(body, scanner)}
    response = client.post(URL, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 200 and response.json() == []


@pytest.mark.parametrize(
    "kind, policy, first, audit_action",
    [
        ("api_key", LeakedCredentialAction.REVOKE, "credential.revoked", "credentials.api_key.revoked"),
        ("m2m_app", LeakedCredentialAction.REVOKE, "credential.revoked", "tokens.m2m_app.secret_revoked"),
        ("api_key", LeakedCredentialAction.SUSPEND, "credential.suspended", "credentials.api_key.suspended"),
        ("m2m_app", LeakedCredentialAction.SUSPEND, "credential.suspended", "tokens.m2m_app.suspended"),
    ],
)
def test_a_leak_report_is_delivered_to_a_subscribed_receiver(
    client,
    scanner,
    organization,
    owner,
    member,
    scopes,
    receiver,
    make_endpoint,
    kind,
    policy,
    first,
    audit_action,
):
    policy_update(organization=organization, actor=owner, leaked_credential_action=policy)
    _endpoint, hook_secret = make_endpoint(["revoked", "suspended", "leaked"])
    kit = Kit(key=kind, organization=organization)
    credential, secret = kit.create(owner=member)
    WebhookDelivery.objects.all().delete()  # `created` is not subscribed anyway; start clean

    report(client, scanner, secret)
    report(client, scanner, secret)  # GitHub retried: nothing new is queued
    assert list(WebhookDelivery.objects.order_by("id").values_list("event_type", flat=True)) == [
        first,
        "credential.leaked",
    ]

    assert "Delivered 2" in deliver()
    action, leaked = receiver.verified(hook_secret)
    ref = credential.key_id if kind == "api_key" else credential.client_id
    assert action["type"] == first and leaked["type"] == "credential.leaked"
    assert action["data"]["audit_action"] == audit_action
    assert action["data"]["credential"]["id"] == leaked["data"]["credential"]["id"] == ref
    assert leaked["data"]["actor"] is None  # the system acted, on the scanner's word
    expected_action = {
        ("api_key", "revoke"): "revoked",
        ("m2m_app", "revoke"): "secret_revoked",
    }.get((kind, policy), "suspended")
    assert leaked["data"]["leak"] == {
        "action": expected_action,
        "found_at": LEAK_URL,
        "source": "content",
        "reporter": "github",
    }
    assert "request_type" not in leaked["data"]  # the scanner's token type is not a request's type
    # Both payloads describe the credential as the report left it.
    status = {"revoked": "revoked", "secret_revoked": "active", "suspended": "suspended"}[expected_action]
    assert action["data"]["credential"]["status"] == leaked["data"]["credential"]["status"] == status
    if policy == LeakedCredentialAction.SUSPEND:
        assert action["data"]["reason"] == "leaked"
    for request in receiver.received:
        assert secret.encode() not in request.body
        assert secret[8:20].encode() not in request.body  # not even a part beyond the public hint


def test_an_unsubscribed_or_other_organisations_endpoint_gets_nothing(
    client,
    scanner,
    organization,
    other_organization,
    owner,
    outsider,
    member,
    scopes,
    receiver,
    make_endpoint,
):
    make_endpoint(["created"])
    make_endpoint(["leaked", "revoked"], org=other_organization, actor=outsider)
    credential, secret = Kit(key="api_key", organization=organization).create(owner=member)
    WebhookDelivery.objects.all().delete()
    report(client, scanner, secret)
    assert not WebhookDelivery.objects.exists()
