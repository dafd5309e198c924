"""The policy on kinds: new API keys allowed / only with an expiry / not allowed, per environment.

Enforced wherever a key is created (service, dashboard, REST, CLI, approvals); existing keys are
flagged, never broken; a policy change racing a key creation has one consistent outcome (PostgreSQL).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_request, api_key_rotate
from credentials.api_keys.verification import api_key_verify
from credentials.governance.approvals import credential_request_approve, credential_secret_issue
from credentials.governance.models import CredentialRequest, Notice
from credentials.governance.org_policy import policy_update
from credentials.governance.selectors import InventoryFilters, inventory_queryset, inventory_rows
from credentials.models import WebhookDelivery
from credentials.webhooks.services import webhook_endpoint_create
from portal.models import AuditEvent, Organization
from tests.factories import ScopeFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def manage_scope(scopes):
    return ScopeFactory(name="api_keys:manage")


def create(organization, owner, environment="live", **kwargs):
    return make_api_key(organization, owner, environment=environment, **kwargs)


def forbid_live(organization, actor):
    return policy_update(organization=organization, actor=actor, new_live_api_keys="forbidden")


def test_live_keys_not_allowed_while_test_keys_still_are(organization, owner, scopes):
    forbid_live(organization, owner)
    with pytest.raises(ValidationError) as excinfo:
        create(organization, owner, "live")
    assert excinfo.value.code == "api_keys_not_allowed"
    assert "Live API keys are not allowed" in excinfo.value.messages[0]
    _key, plaintext = create(organization, owner, "test")
    assert api_key_verify(plaintext).valid
    assert ApiKey.objects.count() == 1


def test_expiring_rule_fills_in_and_caps_the_expiry(organization, owner, scopes):
    policy_update(
        organization=organization, actor=owner, new_live_api_keys="expiring", new_live_api_keys_max_days=30
    )
    key, _ = create(organization, owner, "live")
    assert timedelta(days=29) < key.expires_at - timezone.now() <= timedelta(days=30)
    with pytest.raises(ValidationError) as excinfo:
        create(organization, owner, "live", expires_at=timezone.now() + timedelta(days=31))
    assert excinfo.value.error_dict["expires_at"][0].code == "api_key_expiry_too_long"
    never, _ = create(organization, owner, "test")
    assert never.expires_at is None


def test_expiring_needs_a_number_of_days(organization, owner):
    with pytest.raises(ValidationError):
        policy_update(organization=organization, actor=owner, new_test_api_keys="expiring")


def test_rest_refuses_with_a_code(organization, owner, scopes, manage_scope):
    _manager, manager_plain = api_key_create(
        organization=organization,
        name="automation",
        owner=owner,
        scopes=["api_keys:manage", "orders:read"],
        actor=owner,
        environment="test",
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {manager_plain}")
    policy_update(
        organization=organization,
        actor=owner,
        new_live_api_keys="forbidden",
        new_test_api_keys="expiring",
        new_test_api_keys_max_days=7,
    )
    url = "/api/v1/orgs/acme/api-keys/"
    live = client.post(
        url, {"name": "x", "scopes": ["orders:read"], "environment": "live"}, "application/json"
    )
    assert live.status_code == 403
    assert live.json()["code"] == "api_keys_not_allowed"
    assert "M2M application" in live.json()["detail"]
    too_long = client.post(
        url,
        {"name": "x", "scopes": ["orders:read"], "environment": "test", "expires_in_days": 8},
        "application/json",
    )
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "api_key_expiry_too_long"
    ok = client.post(
        url,
        {"name": "x", "scopes": ["orders:read"], "environment": "test", "expires_in_days": 7},
        "application/json",
    )
    assert ok.status_code == 201, ok.content


def test_cli_refuses_with_the_reason(organization, owner, scopes):
    forbid_live(organization, owner)
    with pytest.raises(CommandError, match="Live API keys are not allowed"):
        call_command(
            "create_api_key",
            "--org",
            "acme",
            "--name",
            "x",
            "--owner",
            owner.email,
            "--environment",
            "live",
            stdout=StringIO(),
        )
    out = StringIO()
    call_command(
        "create_api_key",
        "--org",
        "acme",
        "--name",
        "x",
        "--owner",
        owner.email,
        "--environment",
        "test",
        "--json",
        stdout=out,
    )
    assert '"environment": "test"' in out.getvalue()


def test_dashboard_refuses_with_the_reason(owner_client, organization, owner, scopes):
    forbid_live(organization, owner)
    url = reverse("org-api-key-create", args=["acme"])
    data = {
        "submission": "s1",
        "name": "x",
        "owner": owner.pk,
        "scopes": ["orders:read"],
        "environment": "live",
    }
    response = owner_client.post(url, data)
    assert response.status_code == 400
    assert "Live API keys are not allowed" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_a_request_approved_after_the_policy_changed_is_refused(
    organization, owner, admin_user, member, scopes
):
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    key, request = api_key_request(
        organization=organization,
        name="waiting",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="nightly export",
        environment="live",
    )
    forbid_live(organization, owner)
    with pytest.raises(ValidationError) as excinfo:
        credential_request_approve(request=request, actor=admin_user)
    assert excinfo.value.code == "api_keys_not_allowed"
    assert CredentialRequest.objects.get(pk=request.pk).state == "pending"

    # Approved while allowed, then the policy changed before the owner generated the secret.
    policy_update(organization=organization, actor=owner, new_live_api_keys="allowed")
    credential_request_approve(request=request, actor=admin_user)
    forbid_live(organization, owner)
    with pytest.raises(ValidationError) as excinfo:
        credential_secret_issue(credential=key, actor=member)
    assert excinfo.value.code == "api_keys_not_allowed"
    key.refresh_from_db()
    assert key.status == "pending" and key.digest is None


def test_a_request_for_a_key_the_policy_refuses_is_refused_at_once(organization, owner, member, scopes):
    policy_update(
        organization=organization, actor=owner, approve_new_api_keys=True, new_live_api_keys="forbidden"
    )
    with pytest.raises(ValidationError) as excinfo:
        api_key_request(
            organization=organization,
            name="x",
            owner=member,
            scopes=["orders:read"],
            requester=member,
            justification="because",
            environment="live",
        )
    assert excinfo.value.code == "api_keys_not_allowed"


def test_existing_keys_keep_working_are_flagged_and_their_owners_told_once(
    organization, owner, member, scopes, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True
    webhook_endpoint_create(
        organization=organization, url="http://127.0.0.1:9/hook", event_types=["against_policy"], actor=owner
    )
    live, live_plain = api_key_create(
        organization=organization,
        name="live job",
        owner=member,
        scopes=["orders:read"],
        actor=member,
        environment="live",
    )
    test, _ = create(organization, owner, "test")
    with django_capture_on_commit_callbacks(execute=True):
        forbid_live(organization, owner)
    assert api_key_verify(live_plain).valid
    live.refresh_from_db()
    test.refresh_from_db()
    assert live.policy_flagged_at is not None and test.policy_flagged_at is None

    rows = inventory_rows(
        list(inventory_queryset(organization, InventoryFilters(flag="against_policy"))), org_slug="acme"
    )
    assert [(r.ref, r.flags) for r in rows] == [(live.key_id, ["against_policy"])]
    assert (
        AuditEvent.objects.filter(action="credentials.api_key.policy_flagged", target_id=str(live.pk)).count()
        == 1
    )
    assert AuditEvent.objects.filter(action="credentials.policy.updated").count() == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "credential.against_policy"
    assert delivery.payload["data"]["credential"]["id"] == live.key_id
    assert Notice.objects.filter(notice_type="against_policy").count() == 1
    assert [m.to for m in mailoutbox if "Against the new policy" in m.subject] == [[member.email]]

    # Another setting changes: nobody is told twice, nothing is flagged twice.
    policy_update(organization=organization, actor=owner, orphan_grace_days=20)
    policy_update(
        organization=organization, actor=owner, new_test_api_keys="expiring", new_test_api_keys_max_days=9
    )
    test.refresh_from_db()
    assert test.policy_flagged_at is not None  # a test key without an expiry, now against the policy
    assert sorted(n.object_id for n in Notice.objects.filter(notice_type="against_policy")) == sorted(
        [live.pk, test.pk]
    )
    assert AuditEvent.objects.filter(action="credentials.api_key.policy_flagged").count() == 2

    # Rotating the flagged key keeps the integration alive, and the flag.
    successor, successor_plain = api_key_rotate(api_key=live, actor=member)
    assert api_key_verify(successor_plain).valid and successor.policy_flagged_at is not None

    # Allowed again: the flags go.
    policy_update(organization=organization, actor=owner, new_live_api_keys="allowed")
    assert list(ApiKey.objects.filter(policy_flagged_at__isnull=False)) == [
        test
    ]  # still against the test rule


# --- the race (PostgreSQL) ------------------------------------------------------------------


def _in_thread(target, results, name):
    def run():
        try:
            results[name] = target()
        except ValidationError as exc:
            results[name] = f"refused:{exc.code}"
        except Exception as exc:  # shown in the assertion instead of lost in the thread
            results[name] = repr(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_creation_waits_for_a_policy_change_and_is_refused(require_postgres, organization, owner, scopes):
    changed, release = threading.Event(), threading.Event()
    results: dict = {}

    def change_policy():
        with transaction.atomic():
            forbid_live(Organization.objects.get(pk=organization.pk), owner)
            changed.set()
            release.wait(10)
        return "changed"

    policy_thread = _in_thread(change_policy, results, "policy")
    assert changed.wait(10)
    create_thread = _in_thread(
        lambda: create(Organization.objects.get(pk=organization.pk), owner, "live")[0].key_id,
        results,
        "create",
    )
    time.sleep(0.5)
    assert "create" not in results  # it waits on the policy row
    release.set()
    policy_thread.join(20)
    create_thread.join(20)
    assert results == {"policy": "changed", "create": "refused:api_keys_not_allowed"}
    assert not ApiKey.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_policy_change_waits_for_a_creation_and_flags_it(require_postgres, organization, owner, scopes):
    created, release = threading.Event(), threading.Event()
    results: dict = {}

    def create_key():
        with transaction.atomic():
            key, _ = create(Organization.objects.get(pk=organization.pk), owner, "live")
            created.set()
            release.wait(10)
        return key.key_id

    create_thread = _in_thread(create_key, results, "create")
    assert created.wait(10)
    policy_thread = _in_thread(
        lambda: forbid_live(Organization.objects.get(pk=organization.pk), owner) and "changed",
        results,
        "policy",
    )
    time.sleep(0.5)
    assert "policy" not in results  # it waits on the policy row
    release.set()
    create_thread.join(20)
    policy_thread.join(20)
    assert results["policy"] == "changed"
    key = ApiKey.objects.get(key_id=results["create"])
    assert key.status == "active" and key.policy_flagged_at is not None


def test_the_policy_page_sets_the_rules_per_environment(owner_client, organization, owner):
    url = reverse("org-policy", kwargs={"org_slug": organization.slug})
    page = owner_client.get(url).content.decode()
    assert "New live API keys" in page and "Not allowed (M2M applications only)" in page
    data = {
        "default_rotation_overlap_hours": "24",
        "api_key_review_interval_days": "90",
        "m2m_app_review_interval_days": "90",
        "orphan_grace_days": "14",
        "overdue_grace_days": "14",
        "leaked_credential_action": "revoke",
        "new_live_api_keys": "expiring",
        "new_live_api_keys_max_days": "",
        "new_test_api_keys": "allowed",
    }
    missing_days = owner_client.post(url, data)
    assert (
        missing_days.status_code == 400
        and "Give the longest expiry, in days." in missing_days.content.decode()
    )
    assert owner_client.post(url, {**data, "new_live_api_keys": "forbidden"}).status_code == 302
    event = AuditEvent.objects.get(action="credentials.policy.updated")
    assert event.extra["new_live_api_keys"] == {"from": "allowed", "to": "forbidden"}


def test_the_cli_sets_and_prints_the_rules(organization, owner, scopes):
    create(organization, owner, "live")
    out = StringIO()
    call_command("set_api_key_policy", "--org", "acme", "--live", "forbidden", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["new_live_api_keys"] == "forbidden" and result["new_test_api_keys"] == "allowed"
    assert result["flagged_api_keys"] == 1
    event = AuditEvent.objects.get(action="credentials.policy.updated")
    assert event.actor is None and event.extra["new_live_api_keys"]["to"] == "forbidden"
    with pytest.raises(CommandError, match="Give the longest expiry"):
        call_command("set_api_key_policy", "--org", "acme", "--test", "expiring", stdout=StringIO())
    out = StringIO()
    call_command(
        "set_api_key_policy", "--org", "acme", "--test", "expiring", "--test-max-days", "30", stdout=out
    )
    assert "new test API keys: expiring (at most 30 days)" in out.getvalue()
    with pytest.raises(CommandError, match="No organisation"):
        call_command("set_api_key_policy", "--org", "nope", stdout=StringIO())


def test_the_rest_api_reads_and_changes_the_rules(owner_client, member_client, organization, owner, scopes):
    ScopeFactory(name="inventory:read")
    create(organization, owner, "live")
    url = "/api/v1/orgs/acme/policy/api-keys/"
    assert owner_client.get(url).json() == {
        "new_live_api_keys": "allowed",
        "new_live_api_keys_max_days": None,
        "new_test_api_keys": "allowed",
        "new_test_api_keys_max_days": None,
        "flagged_api_keys": 0,
    }
    refused = member_client.patch(url, {"new_live_api_keys": "forbidden"}, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["code"] == "not_manager"
    bad = owner_client.patch(url, {"new_test_api_keys": "expiring"}, content_type="application/json")
    assert bad.status_code == 400 and "new_test_api_keys_max_days" in bad.json()
    changed = owner_client.patch(url, {"new_live_api_keys": "forbidden"}, content_type="application/json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["new_live_api_keys"] == "forbidden" and changed.json()["flagged_api_keys"] == 1
    _reader, reader_plain = api_key_create(
        organization=organization,
        name="reader",
        owner=owner,
        scopes=["inventory:read"],
        actor=owner,
        environment="test",
    )
    machine = Client(HTTP_AUTHORIZATION=f"Bearer {reader_plain}")
    assert machine.get(url).json()["new_live_api_keys"] == "forbidden"
    by_key = machine.patch(url, {"new_live_api_keys": "allowed"}, content_type="application/json")
    assert by_key.status_code == 403 and by_key.json()["code"] == "session_required"
    assert Client().get(url).status_code in (401, 403)
