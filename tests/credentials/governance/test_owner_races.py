"""Races between giving a credential an owner and that owner's removal (PostgreSQL, real locks).

Invariant (docs/governance.md): a live credential whose owner is not a member of its
organisation is orphaned (`orphaned_at` set), so it shows in the orphan queue. Each test holds
one side in the middle of its transaction (a patched step in the thread named after it).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from credentials.api_keys import services as api_key_services
from credentials.api_keys.models import ApiKey
from credentials.governance import ownership
from credentials.governance.common import LIVE_STATUSES
from portal.models import Membership
from portal.services import organizations as org_services
from tests.support.threads import run_together


def _run(*targets):
    """Run the targets at once; return what they raised."""
    return [result for result in run_together(*targets).values() if isinstance(result, BaseException)]


def _unorphaned_keys_of_non_members(organization):
    members = set(Membership.objects.filter(organization=organization).values_list("user_id", flat=True))
    return [
        (k.key_id, k.owner_id, k.status)
        for k in ApiKey.objects.filter(organization=organization, status__in=LIVE_STATUSES)
        if k.owner_id not in members and k.orphaned_at is None
    ]


def _remove(organization, user, actor, after: threading.Event, done: threading.Event):
    def run():
        assert after.wait(timeout=10)
        membership = Membership.objects.get(organization=organization, user=user)
        org_services.membership_remove(membership=membership, actor=actor)
        done.set()

    return run


def _rotation_vs_removal(monkeypatch, organization, owner, member, make_key):
    key, _plain = make_key(owner=member, name="contended")
    locked, removed = threading.Event(), threading.Event()
    real_publish = api_key_services.snapshot_publish

    def slow_publish(api_key):
        if threading.current_thread().name == "rotate":
            locked.set()
            time.sleep(1.5)  # holds the old key's row lock while T2 lists and waits
        return real_publish(api_key)

    monkeypatch.setattr(api_key_services, "snapshot_publish", slow_publish)

    def rotate():
        api_key_services.api_key_rotate(
            api_key=ApiKey.objects.get(pk=key.pk), actor=member, overlap=timedelta(hours=1)
        )

    errors = _run(("rotate", rotate), ("remove", _remove(organization, member, owner, locked, removed)))
    return key, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rotation_racing_the_owners_removal_leaves_both_keys_orphaned(
    require_postgres, monkeypatch, organization, owner, member, make_key
):
    """T1 rotates the member's key and holds it; T2 removes the member. T1 took the membership
    first, so T2 waits, then orphans the old key and the successor alike (no deadlock either)."""
    key, errors = _rotation_vs_removal(monkeypatch, organization, owner, member, make_key)
    assert not errors, errors
    assert not Membership.objects.filter(organization=organization, user=member).exists()
    assert ApiKey.objects.filter(replaces=key).exists()
    assert _unorphaned_keys_of_non_members(organization) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reassignment_racing_the_new_owners_removal_is_orphaned(
    require_postgres, monkeypatch, organization, owner, member, make_key
):
    """T1 reassigns the owner's key to the member (member check passes); T2 removes the member and
    commits before T1 does; T2's orphan sweep never saw the key as the member's."""
    key, _plain = make_key(owner=owner, name="contended")
    checked, removed = threading.Event(), threading.Event()
    real_check = ownership.check_owner_may_hold

    def paused_check(*args, **kwargs):
        if threading.current_thread().name == "reassign":
            checked.set()
            removed.wait(timeout=4)  # T2 waits on the membership this holds: times out, goes on
        return real_check(*args, **kwargs)

    monkeypatch.setattr(ownership, "check_owner_may_hold", paused_check)

    def reassign():
        ownership.credential_reassign_owner(
            credential=ApiKey.objects.get(pk=key.pk), owner=member, actor=owner
        )

    errors = _run(("reassign", reassign), ("remove", _remove(organization, member, owner, checked, removed)))
    assert not errors, errors
    key = ApiKey.objects.get(pk=key.pk)
    membership_left = not Membership.objects.filter(organization=organization, user=member).exists()
    assert membership_left
    assert key.owner_id == member.pk and key.orphaned_at is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_key_created_racing_the_owners_removal_is_orphaned(
    require_postgres, monkeypatch, organization, owner, member, scopes
):
    """T1 creates a key for the member (member check passes); T2 removes the member and commits first."""
    checked, removed = threading.Event(), threading.Event()
    real = api_key_services.check_new_api_key

    def paused(*args, **kwargs):
        if threading.current_thread().name == "create":
            checked.set()
            removed.wait(timeout=4)
        return real(*args, **kwargs)

    monkeypatch.setattr(api_key_services, "check_new_api_key", paused)

    def create():
        api_key_services.api_key_create(
            organization=organization, name="new", owner=member, scopes=["orders:read"], actor=owner
        )

    errors = _run(("create", create), ("remove", _remove(organization, member, owner, checked, removed)))
    assert not errors, errors
    assert not Membership.objects.filter(organization=organization, user=member).exists()
    assert _unorphaned_keys_of_non_members(organization) == []
