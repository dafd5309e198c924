"""Writes that meet on a member's row, the policy row and a credential take them in the documented
order (memberships, the policy row, credentials: docs/governance.md), so they wait for each other
instead of deadlocking (PostgreSQL, real locks). A deadlock would abort one side: a 503 and a lost
change.

Each test pauses one side just after it took its first lock, so the other side takes its own
first lock and then waits (the technique of test_removal_races.py); written in the wrong order
the two would deadlock, in the right one they simply serialise.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.test import Client
from django.urls import reverse

from credentials import rest
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_request
from credentials.governance import approvals
from credentials.governance.org_policy import policy_update
from tests.support.threads import run_together
from tokens.clients.services import m2m_app_create
from tokens.models import M2MApplication

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LIMIT = {"requests": 10, "per_seconds": 60}


def _aborted(results: dict) -> dict:
    """Return the sides that raised (a deadlock, say) or answered 5xx."""
    return {
        name: result
        for name, result in results.items()
        if isinstance(result, BaseException) or getattr(result, "status_code", 0) >= 500
    }


def _twin(client: Client) -> Client:
    """Return a client sharing `client`'s session, for a thread of its own."""
    twin = Client()
    twin.cookies = client.cookies
    return twin


def _pause_in(monkeypatch, module, name: str, thread: str, *, after: bool = False) -> threading.Event:
    """Make `module.name` pause for a second in `thread` (before or after it runs, first call only);
    return the event set when the pause starts."""
    real = getattr(module, name)
    paused = threading.Event()

    def pausing(*args, **kwargs):
        first = threading.current_thread().name == thread and not paused.is_set()
        if first and not after:
            paused.set()
            time.sleep(1.0)
        result = real(*args, **kwargs)
        if first and after:
            paused.set()
            time.sleep(1.0)
        return result

    monkeypatch.setattr(module, name, pausing)
    return paused


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_an_owner_and_policy_change_over_rest_racing_a_credential_created_for_the_new_owner(
    require_postgres, monkeypatch, kind, organization, owner, member, make_key, make_app
):
    """PATCH with a new owner and a runtime policy locks the new owner's membership, then the policy
    row (`lock_policy_first`), then the credential; a credential created for that member locks the
    same two rows in the same order. Both succeed, one after the other."""
    if kind == "api_key":
        credential, _plain = make_key(owner=owner, name="to hand over", scopes=["orders:read"])
        url = f"/api/v1/orgs/acme/api-keys/{credential.key_id}/"
    else:
        credential = make_app(name="to hand over", scopes=["orders:read"]).application
        url = f"/api/v1/orgs/acme/m2m-apps/{credential.pk}/"
    boss = Client()
    boss.force_login(owner)
    # The PATCH pauses once it holds the policy row: the create takes the member's row meanwhile.
    locked = _pause_in(monkeypatch, rest, "policy_locked", "patch", after=True)

    def patch():
        return _twin(boss).patch(url, {"owner": member.email, "rate_limit": LIMIT}, "application/json")

    def create():
        assert locked.wait(timeout=10)
        if kind == "api_key":
            return api_key_create(
                organization=organization, name="mine", owner=member, scopes=["orders:read"], actor=member
            )
        return m2m_app_create(
            organization=organization, name="mine", owner=member, scopes=["orders:read"], actor=member
        )

    results = run_together(("patch", patch), ("create", create))
    assert not _aborted(results), f"one side was aborted: {_aborted(results)}"
    assert results["patch"].status_code == 200, results["patch"].content
    model = ApiKey if kind == "api_key" else M2MApplication
    changed = model.objects.get(pk=credential.pk)
    assert changed.owner_id == member.pk and changed.rate_limit == LIMIT
    assert model.objects.filter(name="mine", owner=member).count() == 1


@pytest.mark.parametrize("step", ["approve", "issue"])
def test_approving_or_issuing_a_key_racing_its_runtime_policy_change(
    require_postgres, monkeypatch, step, organization, owner, member, member_client, owner_client, scopes
):
    """Approving a new key and generating its first secret are judged by the policy on kinds: they
    lock the policy row, then the key, as a runtime-policy change of the waiting key does
    (`credential_policy_set`). Both succeed, one after the other."""
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    key, request = api_key_request(
        organization=organization,
        name="reporting",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="reports",
    )
    if step == "issue":
        approvals.credential_request_approve(request=request, actor=owner)
    # Each pauses once it holds the key's row (and what it locked before it).
    holding_the_key = "_check_approver" if step == "approve" else "approved_create_request"
    locked = _pause_in(monkeypatch, approvals, holding_the_key, "decide")

    def decide():
        if step == "approve":  # an owner approves the member's request
            return _twin(owner_client).post(
                reverse("org-request-decide", args=["acme", request.pk]), {"decision": "approve"}
            )
        return _twin(member_client).post(reverse("org-api-key-issue", args=["acme", key.key_id]))

    def change_policy():
        assert locked.wait(timeout=10)
        # The key's owner while approval waits; a manager once it is approved.
        client = member_client if step == "approve" else owner_client
        return _twin(client).post(
            reverse("org-api-key-policy", args=["acme", key.key_id]),
            {"policy-allowed_ips": "", "policy-rate_limit": "10/60"},
        )

    results = run_together(("decide", decide), ("policy", change_policy))
    assert not _aborted(results), f"one side was aborted: {_aborted(results)}"
    key = ApiKey.objects.get(pk=key.pk)
    assert key.rate_limit == LIMIT
    assert key.status == ("pending" if step == "approve" else "active")
