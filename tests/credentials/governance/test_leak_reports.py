"""Leaked-secret reports: GitHub secret-scanning alerts, signed with a test key, for both kinds.

A real ECDSA P-256 key pair is generated here; its public half is configured the way an
operator configures GitHub's (`PORTAL_SECRET_SCANNING_PUBLIC_KEYS`), and every report is a
signed body POSTed to the pinned endpoint.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from datetime import timedelta

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core import mail
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_rotate
from credentials.governance.models import CredentialStatus, LeakedCredentialAction, SuspensionReason
from credentials.governance.org_policy import policy_update
from credentials.governance.reviews import credential_restore, credential_suspend
from credentials.leaks.models import LeakAction, LeakReport
from credentials.leaks.services import MAX_ENTRIES
from credentials.webhooks.models import WebhookDelivery
from credentials.webhooks.services import webhook_endpoint_create
from portal.models import AuditEvent, Membership
from portal.services.organizations import membership_remove
from tests.credentials.governance.conftest import whoami
from tests.factories import UserFactory, make_api_key, make_m2m_app
from tests.security.test_leak_sweep import table_dump
from tests.support.secret_scanning import keys_document, sign
from tests.tokens.conftest import basic
from tokens.clients.services import client_secret_rotate
from tokens.models import ClientSecret, M2MApplication

URL = "/api/v1/secret-scanning/reports"
KEY_ID = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"
LEAK_URL = "https://github.com/octocat/Hello-World/blob/12345600b9cbe38a219f39a9941c9319b600c002/foo/bar.txt"

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def signer():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def stranger():
    """A key nobody configured."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def scanning(settings, signer):
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = keys_document((KEY_ID, signer))
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE = ""
    settings.PORTAL_BASE_URL = "https://portal.example"
    return signer


def entry(token: str, *, url: str = LEAK_URL, source: str = "content", type_: str = "identity_portal_key"):
    return {"token": token, "type": type_, "url": url, "source": source}


def post(client: Client, payload, *, key=None, key_id: str | None = KEY_ID, signature: str | None = None):
    """POST a signed report; `payload` is a list of entries or raw bytes."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {}
    if key_id is not None:
        headers["Github-Public-Key-Identifier"] = key_id
    if signature is None and key is not None:
        signature = sign(body, key)
    if signature is not None:
        headers["Github-Public-Key-Signature"] = signature
    return client.post(URL, data=body, content_type="application/json", headers=headers)


def fake_api_key(valid_checksum: bool = True) -> str:
    from credentials.api_keys import keys

    _key_id, raw = keys.generate("live")
    return raw if valid_checksum else raw[:-1] + ("0" if raw[-1] != "0" else "1")


def _with_checksum(body: str) -> str:
    from portal.infra.crypto import crc32_base62

    return body + crc32_base62(body)


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


# --- what a report does ------------------------------------------------------------------------


def test_a_leaked_credential_is_revoked_at_once(
    kit, scanning, client, owner, admin_user, member, django_capture_on_commit_callbacks
):
    credential, secret = kit.create(owner=member)
    bearer, _ = kit.bearer(client, credential, secret)
    assert whoami(client, bearer).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, [entry(secret)], key=scanning)
    assert response.status_code == 200 and response.json() == []
    assert response["Cache-Control"] == "no-store"

    # The secret stops working at once; for an M2M app, so does the token it minted.
    assert whoami(client, bearer).status_code == 401
    again, failed = kit.bearer(client, credential, secret)
    assert again is None or whoami(client, again).status_code == 401
    if kit.key == "api_key":
        assert kit.reload(credential).status == CredentialStatus.REVOKED
        assert len(_events("credentials.api_key.revoked")) == 1
        expected_action = LeakAction.REVOKED
    else:
        assert failed.status_code == 401
        assert kit.reload(credential).status == CredentialStatus.ACTIVE  # only that secret went
        assert ClientSecret.objects.get(application=credential).revoked_at is not None
        assert len(_events("tokens.m2m_app.secret_revoked")) == 1
        expected_action = LeakAction.SECRET_REVOKED

    report = LeakReport.objects.get()
    assert (report.kind, report.object_id, report.organization) == (kit.key, credential.pk, kit.organization)
    assert report.action_taken == expected_action and report.url == LEAK_URL and report.source == "content"

    (event,) = _events(f"{kit.audit_prefix}.leaked")
    assert event.actor is None and event.actor_label == "system"
    assert event.target_id == str(credential.pk)
    assert event.extra["url"] == LEAK_URL and event.extra["source"] == "content"
    assert event.extra["type"] == "identity_portal_key" and event.extra["action"] == expected_action

    # One email to the owner and the organisation's admins, without the secret.
    (email,) = mail.outbox
    assert set(email.to) == {member.email, owner.email, admin_user.email}
    assert "Secret leaked" in email.subject and "job" in email.subject
    assert LEAK_URL in email.body and "https://portal.example/orgs/acme/" in email.body
    assert secret not in email.body and secret not in email.subject


def test_a_replay_changes_nothing(kit, scanning, client, member, django_capture_on_commit_callbacks):
    credential, secret = kit.create(owner=member)
    body = json.dumps([entry(secret)]).encode()
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, body, key=scanning)
    with django_capture_on_commit_callbacks(execute=True):
        second = post(client, body, key=scanning)
        # The same secret seen somewhere else: noted on the report, still no second action.
        third = post(client, [entry(secret, url="https://gist.github.com/x/1", source="gist")], key=scanning)
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.content == second.content == third.content
    assert LeakReport.objects.count() == 1
    assert len(_events(f"{kit.audit_prefix}.leaked")) == 1
    assert AuditEvent.objects.filter(action__endswith="revoked").count() == 1
    assert len(mail.outbox) == 1
    assert LeakReport.objects.get().sightings[0]["url"] == "https://gist.github.com/x/1"


def test_suspend_policy_suspends_with_reason_leaked(
    kit, scanning, client, owner, member, django_capture_on_commit_callbacks
):
    policy_update(
        organization=kit.organization, actor=owner, leaked_credential_action=LeakedCredentialAction.SUSPEND
    )
    credential, secret = kit.create(owner=member)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, [entry(secret)], key=scanning).status_code == 200
    credential = kit.reload(credential)
    assert credential.status == CredentialStatus.SUSPENDED
    assert credential.suspension_reason == SuspensionReason.LEAKED
    assert kit.scopes_in_use(client, credential, secret) is None  # refused like a revoked one
    assert LeakReport.objects.get().action_taken == LeakAction.SUSPENDED
    assert len(_events(f"{kit.audit_prefix}.suspended")) == 1
    assert len(_events(f"{kit.audit_prefix}.leaked")) == 1
    assert len(mail.outbox) == 1
    # Staff may restore it deliberately; the organisation may not (its secret is public).
    with pytest.raises(ValidationError) as refused:
        credential_restore(credential=credential, actor=owner)
    assert refused.value.code == "staff_only"
    credential_restore(credential=credential, actor=UserFactory(is_staff=True), as_staff=True)
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]


def test_an_orphan_suspension_becomes_a_leak_suspension(kit, scanning, client, owner, member):
    # Otherwise reassigning an owner would silently bring the leaked secret back.
    policy_update(
        organization=kit.organization, actor=owner, leaked_credential_action=LeakedCredentialAction.SUSPEND
    )
    credential, secret = kit.create(owner=member)
    credential_suspend(credential=credential, actor=owner, reason=SuspensionReason.ORPHANED)
    post(client, [entry(secret)], key=scanning)
    assert kit.reload(credential).suspension_reason == SuspensionReason.LEAKED
    (event,) = _events(f"{kit.audit_prefix}.leaked")
    assert event.extra["previous_suspension_reason"] == SuspensionReason.ORPHANED


def test_only_the_leaked_client_secret_is_revoked(scanning, client, organization, owner, scopes):
    from tests.credentials.governance.conftest import Kit

    kit = Kit(key="m2m_app", organization=organization)
    application, leaked = kit.create(owner=owner)
    _secret, fresh = client_secret_rotate(application=application, actor=owner)
    post(client, [entry(leaked)], key=scanning)
    assert kit.scopes_in_use(client, application, leaked) is None
    assert kit.scopes_in_use(client, application, fresh) == ["orders:read"]
    report = LeakReport.objects.get()
    assert report.secret_hint == leaked[:8] + "…"


def test_secrets_made_under_an_older_pepper_are_recognised(kit, scanning, client, member, settings):
    credential, secret = kit.create(owner=member)
    # The pepper was rotated since: new digests use "new", this secret's digest is under the old one.
    settings.PORTAL_PEPPERS = "new:" + "n" * 40 + "," + settings.PORTAL_PEPPERS
    post(client, [entry(secret)], key=scanning)
    assert LeakReport.objects.get().object_id == credential.pk


def test_the_credential_page_shows_the_report(kit, scanning, client, owner_client, member, member_client):
    credential, secret = kit.create(owner=member)
    assert "Leaked" not in owner_client.get(kit.url(credential)).content.decode()
    post(client, [entry(secret)], key=scanning)
    post(client, [entry(secret, url="javascript:alert(1)", source="gist")], key=scanning)
    for browser in (owner_client, member_client):
        page = browser.get(kit.url(credential)).content.decode()
        assert "A secret was found in public" in page
        assert f'<a href="{LEAK_URL}" rel="noopener noreferrer nofollow">' in page
        assert "javascript:alert(1)" in page and 'href="javascript:' not in page  # shown, never a link
        assert "GitHub" in page and "content" in page
        assert secret not in page
    audit = owner_client.get(reverse("org-audit", kwargs={"org_slug": "acme"})).content.decode()
    assert f"{kit.audit_prefix}.leaked" in audit


def test_the_inventory_marks_leaked_credentials(kit, scanning, client, owner_client, member):
    leaked, secret = kit.create(owner=member, name="leaky")
    kit.create(owner=member, name="quiet")
    post(client, [entry(secret)], key=scanning)
    rows = owner_client.get(f"/api/v1/orgs/{kit.organization.slug}/inventory/").json()["results"]
    flags = {row["name"]: row["flags"] for row in rows}
    assert "leaked" in flags["leaky"] and "leaked" not in flags["quiet"]
    page = owner_client.get(reverse("org-inventory", kwargs={"org_slug": kit.organization.slug}))
    assert ">Leaked</span>" in page.content.decode()


def test_the_policy_page_sets_the_action(owner_client, organization):
    from credentials.governance.org_policy import policy_for

    url = reverse("org-policy", kwargs={"org_slug": organization.slug})
    page = owner_client.get(url).content.decode()
    assert "When a secret is reported leaked" in page and 'value="suspend"' in page
    data = {
        "api_key_max_lifetime_days": "",
        "client_secret_max_lifetime_days": "",
        "default_rotation_overlap_hours": "24",
        "api_key_review_interval_days": "90",
        "m2m_app_review_interval_days": "90",
        "orphan_grace_days": "14",
        "overdue_grace_days": "14",
        "leaked_credential_action": "suspend",
    }
    assert owner_client.post(url, data).status_code == 302
    organization.refresh_from_db()
    assert policy_for(organization).leaked_credential_action == "suspend"
    event = AuditEvent.objects.get(action="credentials.policy.updated")
    assert event.extra["leaked_credential_action"] == {"from": "revoke", "to": "suspend"}
    assert owner_client.post(url, {**data, "leaked_credential_action": "ignore"}).status_code == 400


# --- what a report reveals: nothing ------------------------------------------------------------


def test_every_token_is_acknowledged_the_same_way(
    scanning, client, organization, owner, member, scopes, django_capture_on_commit_callbacks
):
    from credentials.api_keys.services import api_key_create, api_key_revoke

    revoked, revoked_key = api_key_create(
        organization=organization, name="old", owner=member, scopes=[], actor=member
    )
    api_key_revoke(api_key=revoked, actor=owner, reason="rotated away")
    live, live_key = api_key_create(
        organization=organization, name="live", owner=member, scopes=[], actor=member
    )
    tokens = {
        "live": live_key,
        "unknown key id": fake_api_key(),
        "bad checksum": fake_api_key(valid_checksum=False),
        "already revoked": revoked_key,
        "unknown client secret": "ips_" + "A" * 32,
        "other format": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "wrong secret, real key id": _with_checksum(live_key[:-10] + "abcd"),
    }
    answers = {}
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        for label, token in tokens.items():
            response = post(client, [entry(token)], key=scanning)
            answers[label] = (response.status_code, response.content, response.get("Content-Type"))
    assert len(set(answers.values())) == 1, answers
    assert answers["live"][0] == 200
    # Only the live key was acted on; the revoked one is noted on its page, nobody is emailed.
    assert LeakReport.objects.get(object_id=live.pk).action_taken == LeakAction.REVOKED
    assert LeakReport.objects.get(object_id=revoked.pk).action_taken == LeakAction.NONE
    assert LeakReport.objects.count() == 2
    assert len(mail.outbox) == 1


def test_jwts_and_webhook_secrets_are_acknowledged_and_change_nothing(
    scanning, client, organization, other_organization, owner, outsider, member, scopes
):
    """Tokens the portal issues but does not register with GitHub: a uniform answer, nothing done.

    Access tokens (from client credentials or exchanged for an API key) are short-lived and die
    with their credential; a webhook signing secret (`whsec_`) is stored encrypted, not as a
    digest, so it cannot be looked up (docs/leak-reports.md, Limits).
    """
    from credentials.api_keys.services import api_key_create
    from credentials.webhooks.services import webhook_endpoint_create
    from tests.credentials.governance.conftest import Kit
    from tokens.clients.services import m2m_app_create, m2m_app_set_exchange
    from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE

    app_kit = Kit(key="m2m_app", organization=organization)
    application, app_secret = app_kit.create(owner=member)
    minted, _ = app_kit.bearer(client, application, app_secret)
    api_key, raw_key = api_key_create(
        organization=organization, name="shop", owner=member, scopes=["orders:read"], actor=member
    )
    gateway, gateway_secret = m2m_app_create(
        organization=other_organization, name="gateway", owner=outsider, scopes=[], actor=outsider
    )
    m2m_app_set_exchange(application=gateway, allowed=True, actor=None)
    auth = "Basic " + base64.b64encode(f"{gateway.client_id}:{gateway_secret}".encode()).decode()
    exchanged = client.post(
        "/oauth/token",
        {"grant_type": GRANT_TYPE, "subject_token": raw_key, "subject_token_type": API_KEY_TOKEN_TYPE},
        HTTP_AUTHORIZATION=auth,
    )
    assert exchanged.status_code == 200, exchanged.content
    exchanged = exchanged.json()["access_token"]
    _endpoint, hook_secret = webhook_endpoint_create(
        organization=organization, url="https://hooks.example.com/p", event_types=["leaked"], actor=owner
    )
    assert hook_secret.startswith("whsec_")
    baseline = post(client, [entry("ghp_16C7e42F292c6912E7710c838347Ae178B4a")], key=scanning)
    for token in (minted, exchanged, hook_secret):
        response = post(client, [entry(token)], key=scanning)
        assert (response.status_code, response.content) == (baseline.status_code, baseline.content)
    assert not LeakReport.objects.exists()
    assert not AuditEvent.objects.filter(action__endswith=".leaked").exists()
    assert whoami(client, minted).status_code == whoami(client, exchanged).status_code == 200

    # The API key itself is what GitHub reports; revoking it stops what was exchanged for it too.
    post(client, [entry(raw_key)], key=scanning)
    assert whoami(client, exchanged).status_code == 401
    assert whoami(client, minted).status_code == 200  # another credential: untouched


def test_malformed_tokens_cost_no_query(scanning, client, django_assert_max_num_queries):
    entries = [entry(fake_api_key(valid_checksum=False)) for _ in range(200)]
    entries += [entry("not-a-token-at-all") for _ in range(200)]
    entries += [entry("ipk_live_" + "a" * 5000), entry("ips_" + "b" * 5000)]  # too long to be ours
    with django_assert_max_num_queries(0):
        assert post(client, entries, key=scanning).status_code == 200


def test_the_token_never_lands_in_logs_responses_or_tables(
    kit, scanning, client, member, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    credential, secret = kit.create(owner=member)
    connection.force_debug_cursor = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            responses = [post(client, [entry(secret)], key=scanning) for _ in range(2)]
            responses.append(post(client, [entry(secret)], key=scanning, signature="bm90IGEgc2lnbmF0dXJl"))
            responses.append(post(client, [entry(secret), {"token": 5}], key=scanning))
    finally:
        connection.force_debug_cursor = False
    body = secret[8:]  # what a hint never shows
    logs = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "SELECT" in logs and "INSERT" in logs
    assert body not in logs
    assert all(body.encode() not in r.content for r in responses)
    assert body not in table_dump()
    assert all(body not in m.body and body not in m.subject for m in mail.outbox)


def test_a_token_that_fails_does_not_stop_the_others(
    scanning, client, organization, member, scopes, monkeypatch, django_capture_on_commit_callbacks
):
    # A failure handling one token (the database went away mid-alert, say; simulated here by
    # the first revocation raising) must not leave the alert's other leaked secrets working.
    from credentials.api_keys.services import api_key_create
    from credentials.leaks import services

    (first, first_raw), (second, second_raw) = (
        api_key_create(organization=organization, name=name, owner=member, scopes=[], actor=member)
        for name in ("first", "second")
    )
    act = services._act

    def flaky(kind, credential, match, action):
        if credential.pk == first.pk:
            raise RuntimeError("connection lost")
        return act(kind, credential, match, action)

    monkeypatch.setattr(services, "_act", flaky)
    body = json.dumps([entry(first_raw), entry(second_raw)]).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, key=scanning)
    assert response.status_code == 503 and response.json()["code"] == "retry"
    assert LeakReport.objects.get().object_id == second.pk  # the second was handled, and emailed
    assert len(mail.outbox) == 1
    assert first_raw not in response.content.decode()

    monkeypatch.setattr(services, "_act", act)
    with django_capture_on_commit_callbacks(execute=True):  # GitHub sends the alert again
        assert post(client, body, key=scanning).status_code == 200
    assert set(LeakReport.objects.values_list("object_id", flat=True)) == {first.pk, second.pk}
    assert AuditEvent.objects.filter(action="credentials.api_key.leaked").count() == 2
    assert len(mail.outbox) == 2  # one per key: the retry was a replay for the second


# --- refused requests: nothing processed ---------------------------------------------------------


@pytest.fixture
def live_key(kit, member):
    return kit.create(owner=member)


def _nothing_processed(kit, credential):
    assert LeakReport.objects.count() == 0
    assert kit.reload(credential).status == CredentialStatus.ACTIVE
    assert not AuditEvent.objects.filter(action__endswith=".leaked").exists()


@pytest.mark.parametrize(
    "case, code",
    [
        ("missing signature", "missing_signature"),
        ("missing key identifier", "missing_key_identifier"),
        ("unknown key identifier", "unknown_key"),
        ("signed by another key", "bad_signature"),
        ("signature over another body", "bad_signature"),
        ("signature not base64", "malformed_signature"),
        ("signature not DER", "bad_signature"),
        ("huge key identifier", "unknown_key"),
    ],
)
def test_bad_signatures_are_refused(kit, scanning, stranger, client, live_key, case, code):
    credential, secret = live_key
    body = json.dumps([entry(secret)]).encode()
    kwargs = {
        "missing signature": {"key_id": KEY_ID},
        "missing key identifier": {"key_id": None, "key": scanning},
        "unknown key identifier": {"key_id": "f9525bf0", "key": scanning},
        "signed by another key": {"key": stranger},
        "signature over another body": {"signature": sign(body + b" ", scanning)},
        "signature not base64": {"signature": "not base64 at all!"},
        "signature not DER": {"signature": base64.b64encode(b"\x00" * 64).decode()},
        "huge key identifier": {"key_id": "k" * 10_000, "key": scanning},
    }[case]
    response = post(client, body, **kwargs)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == code and response.json()["detail"]
    _nothing_processed(kit, credential)


def _too_many(secret):
    return json.dumps([entry(secret)] * (MAX_ENTRIES + 1)).encode()


@pytest.mark.parametrize(
    "case, make_body",
    [
        ("malformed JSON", lambda s: b'[{"token": "' + s.encode() + b'"'),
        ("not UTF-8", lambda s: b"[\xff\xfe]"),
        ("not an array", lambda s: json.dumps(entry(s)).encode()),
        ("empty array", lambda s: b"[]"),
        ("entry not an object", lambda s: json.dumps([entry(s), "x"]).encode()),
        ("entry missing token", lambda s: json.dumps([entry(s), {"type": "t", "url": "u"}]).encode()),
        ("entry missing type", lambda s: json.dumps([entry(s), {"token": s, "url": "u"}]).encode()),
        ("non-string token", lambda s: json.dumps([entry(s), {**entry(s), "token": 42}]).encode()),
        ("empty token", lambda s: json.dumps([entry(s), {**entry(s), "token": " "}]).encode()),
        ("non-string url", lambda s: json.dumps([entry(s), {**entry(s), "url": 7}]).encode()),
        ("nested too deep", lambda s: b"[" * 100_000 + b"]" * 100_000),
        (
            "nested too deep in an entry",
            lambda s: (
                json.dumps([entry(s)]).encode()[:-2] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]"
            ),
        ),
        ("NaN token", lambda s: b'[{"token": NaN, "type": "t", "url": "u"}]'),
        ("5000-digit token", lambda s: b'[{"token": ' + b"9" * 5000 + b', "type": "t", "url": "u"}]'),
        (
            "duplicate key, last not a string",
            lambda s: b'[{"token": "' + s.encode() + b'", "token": 1, "type": "t"}]',
        ),
        ("UTF-16", lambda s: json.dumps([entry(s), {"token": 1}]).encode("utf-16")),
        ("non-string source", lambda s: json.dumps([entry(s), {**entry(s), "source": ["x"]}]).encode()),
        ("too many entries", _too_many),
    ],
)
def test_bad_bodies_are_refused(kit, scanning, client, live_key, case, make_body):
    credential, secret = live_key
    response = post(client, make_body(secret), key=scanning)
    assert response.status_code == 400, response.content
    assert response.json()["detail"]
    assert secret not in response.content.decode()
    _nothing_processed(kit, credential)


@pytest.mark.parametrize(
    "metadata, stored_url, stored_source",
    [
        ({"url": None, "source": None}, "", ""),  # GitHub: the url "may be empty"
        ({}, "", ""),  # neither member (older alerts had no `source`)
        (
            {"url": "https://github.com/o/r/blob/" + "a" * 3000},
            ("https://github.com/o/r/blob/" + "a" * 3000)[:2048],
            "",
        ),
        (
            {"url": "https://x.example/\u0000a\u202eb\ud800", "source": "Gist_\u0000content"},
            "https://x.example/\ufffda\ufffdb\ufffd",
            "Gist_\ufffdcontent",
        ),
    ],
)
def test_odd_metadata_never_keeps_a_leaked_secret_working(
    kit, scanning, client, member, owner_client, metadata, stored_url, stored_source
):
    # A NUL reaches PostgreSQL as an error, a lone surrogate fails any UTF-8 encoding, and an
    # over-long url is not worth refusing an alert for: the secret must be revoked regardless.
    credential, secret = kit.create(owner=member)
    raw = {"token": secret, "type": "identity_portal_key", **metadata}
    body = json.dumps([raw]).encode()  # json.dumps keeps "\ud800" as an escape, as a sender could
    response = post(client, body, key=scanning)
    assert response.status_code == 200 and response.json() == []
    report = LeakReport.objects.get()
    assert (report.url, report.source) == (stored_url, stored_source)
    assert report.action_taken != LeakAction.NONE
    assert AuditEvent.objects.get(action=f"{kit.audit_prefix}.leaked").extra["url"] == stored_url[:1000]
    assert owner_client.get(kit.url(credential)).status_code == 200


def test_an_oversized_body_is_refused_unread(kit, scanning, client, live_key, settings):
    credential, secret = live_key
    body = json.dumps([entry(secret)] * 3000).encode()
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = post(client, body, key=scanning)
    assert response.status_code == 413 and response.json()["detail"]
    _nothing_processed(kit, credential)


def test_not_configured_is_404(settings, client, scanning):
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = ""
    response = post(client, [entry("ipk_x")], key=scanning)
    assert response.status_code == 404 and response.json()["detail"]


def test_get_is_405(scanning, client):
    response = client.get(URL)
    assert response.status_code == 405 and response.json()["detail"]


def test_no_session_and_no_csrf(scanning, owner, live_key, kit):
    # A browser session grants nothing here and is not needed; the CSRF check does not apply.
    credential, secret = live_key
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    refused = post(browser, [entry(secret)], key_id=KEY_ID)
    assert refused.status_code == 403 and refused.json()["code"] == "missing_signature"
    assert post(browser, [entry(secret)], key=scanning).status_code == 200
    assert LeakReport.objects.get().object_id == credential.pk


@pytest.mark.usefixtures("rate_clock")
def test_failed_signatures_are_rate_limited(settings, scanning, stranger, client, live_key):
    settings.PORTAL_SECRET_SCANNING_FAILURES_PER_IP_PER_MINUTE = 3
    for _ in range(3):
        assert post(client, [entry("x")], key=stranger).status_code == 403
    response = post(client, [entry("x")], key=stranger)
    assert response.status_code == 429 and response["Retry-After"]
    # A genuine alert from the same address (a shared proxy, say) still gets through.
    credential, secret = live_key
    assert post(client, [entry(secret)], key=scanning).status_code == 200
    assert LeakReport.objects.get().object_id == credential.pk
    assert post(client, [entry("x")], key=stranger).status_code == 429


# --- operator configuration ---------------------------------------------------------------------


# The example GitHub publishes in its partner program documentation: their key, body and signature.
GITHUB_SAMPLE_KEY_ID = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"
GITHUB_SAMPLE_KEY = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq
kCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==
-----END PUBLIC KEY-----
"""
GITHUB_SAMPLE_BODY = b'[{"token":"some_token","type":"some_type","url":"some_url"}]'
GITHUB_SAMPLE_SIGNATURE = (
    "MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc="
)


def test_githubs_own_sample_is_accepted(settings, client):
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = json.dumps(
        {
            "public_keys": [
                {"key_identifier": GITHUB_SAMPLE_KEY_ID, "key": GITHUB_SAMPLE_KEY, "is_current": True}
            ]
        }
    )
    ok = post(client, GITHUB_SAMPLE_BODY, key_id=GITHUB_SAMPLE_KEY_ID, signature=GITHUB_SAMPLE_SIGNATURE)
    assert ok.status_code == 200 and ok.json() == []  # (an unknown token, and no `source`: older format)
    tampered = GITHUB_SAMPLE_BODY.replace(b"some_url", b"some_uri")
    refused = post(client, tampered, key_id=GITHUB_SAMPLE_KEY_ID, signature=GITHUB_SAMPLE_SIGNATURE)
    assert refused.status_code == 403 and refused.json()["code"] == "bad_signature"


def test_keys_from_a_file_and_rotation(settings, tmp_path, signer, stranger, client, member, kit):
    credential, secret = kit.create(owner=member)
    path = tmp_path / "secret_scanning.json"
    path.write_text(keys_document(("old", stranger)))
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = ""
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE = str(path)
    assert post(client, [entry(secret)], key=signer, key_id="new").status_code == 403
    # GitHub rotated its key: the operator refreshes the file; no restart is needed.
    path.write_text(keys_document(("new", signer), ("old", stranger)))
    assert post(client, [entry(secret)], key=signer, key_id="new").status_code == 200
    assert post(client, [entry(secret)], key=stranger, key_id="old").status_code == 200
    assert LeakReport.objects.count() == 1


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        json.dumps({"public_keys": []}),
        json.dumps({"public_keys": [{"key_identifier": "a", "key": "-----BEGIN PUBLIC KEY-----"}]}),
        "rsa",
    ],
)
def test_misconfigured_keys_fail_the_check_and_answer_503(settings, client, document, signer):
    if document == "rsa":
        from cryptography.hazmat.primitives.asymmetric import rsa

        document = keys_document(("a", rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = document
    errors = [e for e in run_checks() if e.id == "credentials.E101"]
    assert len(errors) == 1
    response = post(client, [entry("x")], key=signer, key_id="a")
    assert response.status_code == 503 and response.json()["detail"]


def test_a_configured_deployment_passes_the_check(scanning):
    assert not [e for e in run_checks() if e.id == "credentials.E101"]


# --- real HTTP and real concurrency -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_over_real_http(live_server, settings, signer, organization, member, scopes):
    from credentials.api_keys.services import api_key_create

    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = keys_document((KEY_ID, signer))
    api_key, raw = api_key_create(
        organization=organization, name="leaky", owner=member, scopes=[], actor=member
    )
    body = json.dumps([entry(raw)], separators=(",", ":")).encode()
    with requests.Session() as session:
        response = session.post(
            live_server.url + URL,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Github-Public-Key-Identifier": KEY_ID,
                "Github-Public-Key-Signature": sign(body, signer),
            },
            timeout=10,
        )
        assert response.status_code == 200 and response.json() == []
        whoami_response = session.get(
            live_server.url + "/api/v1/whoami", headers={"Authorization": f"Bearer {raw}"}, timeout=10
        )
    assert whoami_response.status_code == 401
    assert LeakReport.objects.get().object_id == api_key.pk
    # A generator body goes chunked, without a Content-Length; the development server leaves
    # the chunks unread, so this is the last request on its own closed connection.
    chunked = requests.post(
        live_server.url + URL,
        data=iter([body[:10], body[10:]]),
        headers={
            "Content-Type": "application/json",
            "Connection": "close",
            "Github-Public-Key-Identifier": KEY_ID,
            "Github-Public-Key-Signature": sign(body, signer),
        },
        timeout=10,
    )
    assert chunked.status_code == 411 and chunked.json()["code"] == "length_required"


@pytest.mark.django_db(transaction=True)
def test_the_documented_python_snippet_reports_a_key(
    live_server, settings, tmp_path, monkeypatch, organization, member, scopes
):
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    from credentials.api_keys.services import api_key_create

    text = (Path(settings.BASE_DIR) / "docs" / "leak-reports.md").read_text()
    code = re.search(r"## Sending a test report.*?```python\n(.*?)```", text, re.S).group(1)
    scanner = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "scanner.pem").write_bytes(
        scanner.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    monkeypatch.chdir(tmp_path)
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = keys_document(("test-1", scanner))
    api_key, raw = api_key_create(
        organization=organization, name="leaky", owner=member, scopes=[], actor=member
    )
    code = code.replace("https://portal.example.com", live_server.url)
    exec(compile(code, "docs/leak-reports.md", "exec"), {"leaked_key": raw})  # noqa: S102 (our own docs)
    assert LeakReport.objects.get().object_id == api_key.pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_concurrent_replays_record_one_report(require_postgres, kind, settings, signer, organization, member):
    from tests.credentials.governance.conftest import Kit
    from tests.factories import ScopeFactory

    ScopeFactory(name="orders:read")
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = keys_document((KEY_ID, signer))
    kit = Kit(key=kind, organization=organization)
    credential, secret = kit.create(owner=member)
    bodies = [
        json.dumps([entry(secret)]).encode(),
        json.dumps([entry(secret)]).encode(),
        json.dumps([entry(secret, url="https://gist.github.com/x/2")]).encode(),
        json.dumps([entry(secret, url="https://gist.github.com/x/3")]).encode(),
    ]
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []
    lock = threading.Lock()

    def run(body: bytes) -> None:
        try:
            barrier.wait(timeout=10)
            response = post(Client(), body, key=signer)
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * len(bodies)
    report = LeakReport.objects.get()
    assert len(report.sightings) == 2  # three places, the first one on the report itself
    assert AuditEvent.objects.filter(action=f"{kit.audit_prefix}.leaked").count() == 1
    assert AuditEvent.objects.filter(action__endswith="revoked").count() == 1


# --- edges: who is told, what subscribers hear, an unloadable key, a restored key's rotation ---


def test_leak_email_is_not_sent_to_a_former_member(
    kit, scanning, client, owner, member, django_capture_on_commit_callbacks
):
    """A credential whose owner left the organisation (orphaned) keeps `owner` pointing at the
    ex-member. The leak notice must go to the organisation's managers only, as the scheduled
    `orphaned` notice does, not to someone who is no longer in the organisation."""
    credential, secret = kit.create(owner=member)
    membership_remove(
        membership=Membership.objects.get(user=member, organization=kit.organization), actor=owner
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, [entry(secret)], key=scanning)
    assert response.status_code == 200
    assert len(mail.outbox) == 1
    recipients = set(mail.outbox[0].to) | set(mail.outbox[0].cc) | set(mail.outbox[0].bcc)
    assert owner.email in recipients
    assert member.email not in recipients, "the leak notice (credential name, leak url) went to an ex-member"


def _unsupported_curve_pem() -> str:
    """A well-formed EC public key PEM on a curve `cryptography` cannot load (prime256v1's OID with
    the last arc changed), as an operator pasting the wrong key might produce."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = der.replace(bytes.fromhex("06082a8648ce3d030107"), bytes.fromhex("06082a8648ce3d030108"))
    return "-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der).decode() + "-----END PUBLIC KEY-----\n"


def _document() -> str:
    return json.dumps(
        {"public_keys": [{"key_identifier": "k1", "key": _unsupported_curve_pem(), "is_current": True}]}
    )


def test_an_unloadable_public_key_is_a_503_not_a_500(settings, client):
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = _document()
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE = ""
    client.raise_request_exception = False
    response = client.post(
        "/api/v1/secret-scanning/reports",
        data=b"[]",
        content_type="application/json",
        headers={"Github-Public-Key-Identifier": "k1", "Github-Public-Key-Signature": "AAAA"},
    )
    assert response.status_code == 503, response.status_code
    assert response.json()["code"] == "misconfigured"


def test_an_unloadable_public_key_is_check_error_e101(settings):
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = _document()
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE = ""
    errors = run_checks()  # raises UnsupportedAlgorithm today instead of reporting E101
    assert any(e.id == "credentials.E101" for e in errors)


def test_a_leak_that_re_marks_a_suspension_tells_suspended_subscribers(kit, scanning, client, owner, member):
    """docs/leak-reports.md: an endpoint subscribed to `suspended` receives the change the report
    made (`credential.suspended` with `reason: "leaked"`). When the credential was already
    suspended (orphaned, review overdue, manual) the report re-marks the reason to `leaked` —
    which changes what a later owner reassignment does — but writes no `suspended` audit event,
    so a `suspended` subscriber still believes it is suspended for the old reason."""

    policy_update(
        organization=kit.organization, actor=owner, leaked_credential_action=LeakedCredentialAction.SUSPEND
    )
    webhook_endpoint_create(
        organization=kit.organization,
        url="https://hooks.example.com/portal",
        event_types=["suspended"],
        actor=owner,
    )
    credential, secret = kit.create(owner=member)
    credential_suspend(credential=credential, actor=owner, reason=SuspensionReason.ORPHANED)
    WebhookDelivery.objects.all().delete()
    assert post(client, [entry(secret)], key=scanning).status_code == 200
    assert kit.reload(credential).suspension_reason == SuspensionReason.LEAKED
    reasons = [
        d.payload["data"].get("reason")
        for d in WebhookDelivery.objects.filter(event_type="credential.suspended")
    ]
    assert reasons == ["leaked"], reasons


def test_rotating_a_restored_leaked_key_does_not_keep_the_leaked_secret_working(
    scanning, client, organization, owner, member, scopes
):
    """The leak e-mail says: "ask the portal's staff to restore it and rotate its secret at once". Rotation
    keeps the old secret working for the overlap (24 h by default) and nothing shortens it for a key
    with a leak report, so following the advice keeps the publicly leaked secret valid for another day
    (a replayed or new sighting of it changes nothing either, being a replay)."""

    policy_update(
        organization=organization, actor=owner, leaked_credential_action=LeakedCredentialAction.SUSPEND
    )
    key, secret = make_api_key(organization, member)
    assert post(client, [entry(secret)], key=scanning).status_code == 200
    assert whoami(client, secret).status_code == 401
    restored = credential_restore(credential=key, actor=UserFactory(is_staff=True), as_staff=True)
    with pytest.raises(ValidationError) as refused:
        api_key_rotate(api_key=restored, actor=owner)  # the dashboard's default overlap, 24 h
    assert refused.value.message_dict.keys() == {"overlap"}
    assert whoami(client, secret).status_code == 200  # restored, not yet rotated
    api_key_rotate(api_key=restored, actor=owner, overlap=timedelta(0))
    assert whoami(client, secret).status_code == 401, "the leaked key works again for the whole overlap"


def mint(application, secret: str) -> int:
    """Return the token endpoint's status for a client-credentials request with this secret."""
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(application.client_id, secret),
    )
    return response.status_code


def test_rotating_a_restored_leaked_application_stops_the_leaked_secret_at_once(
    scanning, client, organization, owner, member, scopes
):
    suspend = LeakedCredentialAction.SUSPEND
    policy_update(organization=organization, actor=owner, leaked_credential_action=suspend)
    application, leaked = make_m2m_app(organization, member)
    assert post(client, [entry(leaked)], key=scanning).status_code == 200
    restored = credential_restore(credential=application, actor=UserFactory(is_staff=True), as_staff=True)
    assert mint(application, leaked) == 200  # restored: the leaked secret works again
    with pytest.raises(ValidationError) as refused:
        client_secret_rotate(application=restored, actor=owner)  # the default overlap, 24 h
    assert refused.value.message_dict.keys() == {"overlap"}

    _, fresh = client_secret_rotate(application=restored, actor=owner, overlap=timedelta(0))
    assert mint(application, leaked) == 401 and mint(application, fresh) == 200
    # Every live secret is newer than the report now: the next rotation may overlap again.
    client_secret_rotate(application=restored, actor=owner)
    assert mint(application, fresh) == 200


@pytest.mark.parametrize("how", ["rotated_away", "expired"])
def test_a_leaked_key_that_stopped_working_is_not_revoked_nor_mailed_as_live(
    how, scanning, client, organization, member, scopes, django_capture_on_commit_callbacks
):
    """A key already stopped (rotated away with its overlap over, or past its expiry) was revoked by
    the report, and the e-mail said "the API key was revoked … Create a new one" while its successor
    of the same name worked: the key's `secret_live` mixed in its status, and the intake checked it
    only for kinds with `revoke_secret` (M2M). Like a stopped client secret, it is now recorded as
    *nothing*, audited, and nobody is e-mailed."""
    key, old_raw = make_api_key(organization, member)
    new_raw = None
    if how == "rotated_away":
        _successor, new_raw = api_key_rotate(api_key=key, actor=member, overlap=timedelta(0))
    else:
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert whoami(client, old_raw).status_code == 401
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, [entry(old_raw)], key=scanning).status_code == 200
    report = LeakReport.objects.get()
    assert report.object_id == key.pk and report.action_taken == LeakAction.NONE
    assert ApiKey.objects.get(pk=key.pk).status == CredentialStatus.ACTIVE  # not revoked
    assert not _events("credentials.api_key.revoked")
    assert len(_events("credentials.api_key.leaked")) == 1
    assert not mail.outbox
    if new_raw is not None:
        assert whoami(client, new_raw).status_code == 200


def test_a_second_leaked_secret_of_a_leak_suspended_app_writes_no_second_suspension(
    scanning, client, organization, owner, member, scopes, django_capture_on_commit_callbacks
):
    """Under `suspend`, an alert with two secrets of one M2M application (in a rotation's overlap)
    wrote two `tokens.m2m_app.suspended` events and sent `credential.suspended` twice, the second
    with reason leaked and previous reason leaked: the already-suspended branch re-marked a leak
    suspension as a leak suspension. Now the second changes nothing about the suspension, and is
    still recorded on its own report (its secret's hint) and audited as `leaked`."""
    policy_update(
        organization=organization, actor=owner, leaked_credential_action=LeakedCredentialAction.SUSPEND
    )
    webhook_endpoint_create(
        organization=organization,
        url="https://hooks.example.com/p",
        event_types=["suspended", "leaked"],
        actor=owner,
    )
    application, first = make_m2m_app(organization, member)
    _secret, second = client_secret_rotate(application=application, actor=owner, overlap=timedelta(hours=1))
    other_url = "https://github.com/o/r/blob/y/.env"
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, [entry(first), entry(second, url=other_url)], key=scanning)
    assert response.status_code == 200
    assert M2MApplication.objects.get(pk=application.pk).suspension_reason == SuspensionReason.LEAKED
    assert len(_events("tokens.m2m_app.suspended")) == 1
    assert WebhookDelivery.objects.filter(event_type="credential.suspended").count() == 1
    reports = list(LeakReport.objects.order_by("pk"))
    assert [r.secret_hint for r in reports] == [first[:8] + "…", second[:8] + "…"]
    assert [r.url for r in reports] == [LEAK_URL, other_url]
    assert [r.action_taken for r in reports] == [LeakAction.SUSPENDED, LeakAction.SUSPENDED]
    assert len(_events("tokens.m2m_app.leaked")) == 2
    assert WebhookDelivery.objects.filter(event_type="credential.leaked").count() == 2
