"""The shared API-key snapshot stays true to the database when changes of one key interleave.

docs/api-keys.md: a revocation is "immediate in the process that made the change; <= 0.25 s on
every other process/server"; the shared entry is a 5-minute backstop that "every change replaces".
A writer used to build the snapshot it stores after commit from the row it held: an owner's
demotion, refreshing the owner's keys, held rows read before a revocation committed, and its
after-commit write brought the revoked key back on every server for 5 minutes. Now the snapshot
is read from the database after the commit. And a former member who rejoins lends their key the
new role at once (the snapshot caches the owner's role; only demotions and removals dropped it).
"""

from __future__ import annotations

import threading

import pytest
from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke
from credentials.api_keys.verification import api_key_verify
from credentials.governance import ownership
from portal.infra import hotcache
from portal.models import Membership
from portal.services import organizations as org_services
from tests.support.threads import run_together


def _run(*targets):
    """Run the targets at once; return what they raised."""
    return [result for result in run_together(*targets).values() if isinstance(result, BaseException)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_revocation_committed_during_an_owner_demotion_stays_revoked_on_every_server(
    require_postgres, redis_cache, monkeypatch, organization, owner, admin_user, make_key
):
    """T1 demotes the key's owner (its audit listener reads the owner's keys to refresh their
    snapshots); T2 revokes the key and commits first. When T1 commits it writes the snapshot it
    built from its pre-revocation read: status "active". Every server then accepts the revoked key."""
    key, plaintext = make_key(owner=admin_user, name="contended")
    assert api_key_verify(plaintext).valid  # the snapshot is in Redis, as on a busy system
    read, revoked = threading.Event(), threading.Event()
    real_refresh = ownership._refresh_credentials_of

    def paused_refresh(**owner_filter):
        real_refresh(**owner_filter)  # reads the keys (status active) and queues their snapshots
        if threading.current_thread().name == "demote":
            read.set()
            assert revoked.wait(timeout=10)

    monkeypatch.setattr(ownership, "_refresh_credentials_of", paused_refresh)

    def demote():
        membership = Membership.objects.get(organization=organization, user=admin_user)
        org_services.membership_change_role(membership=membership, role="member", actor=owner)

    def revoke():
        assert read.wait(timeout=10)
        api_key_revoke(api_key=ApiKey.objects.get(pk=key.pk), actor=owner, reason="leaked")
        revoked.set()

    errors = _run(("demote", demote), ("revoke", revoke))
    assert not errors, errors
    assert ApiKey.objects.get(pk=key.pk).status == "revoked"
    outcome = api_key_verify(plaintext)  # what any server reads now from the shared snapshot
    assert not outcome.valid and outcome.code == "revoked", (
        "the revoked key verifies as valid: the demotion's after-commit snapshot (read before the "
        "revocation) replaced the revoked one in Redis"
    )


@pytest.mark.django_db
def test_the_same_interleaving_replayed_on_one_connection(
    redis_cache, organization, owner, admin_user, make_key, django_capture_on_commit_callbacks
):
    """The interleaving above without PostgreSQL: the demotion's after-commit work is held back
    (its transaction commits last), the revocation commits and publishes in between."""
    key, plaintext = make_key(owner=admin_user, name="contended")
    assert api_key_verify(plaintext).valid
    membership = Membership.objects.get(organization=organization, user=admin_user)
    with django_capture_on_commit_callbacks() as demotion_commit:  # T1: not committed yet
        org_services.membership_change_role(membership=membership, role="member", actor=owner)
    with django_capture_on_commit_callbacks(execute=True):  # T2 commits first
        api_key_revoke(api_key=ApiKey.objects.get(pk=key.pk), actor=owner, reason="leaked")
    assert api_key_verify(plaintext).code == "revoked"
    for callback in demotion_commit:  # T1 commits now
        callback()
    outcome = api_key_verify(plaintext)
    assert not outcome.valid and outcome.code == "revoked", "the demotion's stale snapshot revived the key"


@pytest.mark.django_db
def test_a_rejoined_owner_lends_their_key_the_new_role_at_once(
    redis_cache, make_key, organization, owner, member, django_capture_on_commit_callbacks
):
    _row, key = make_key(owner=member, scopes=["orders:read", "api_keys:manage"])
    with django_capture_on_commit_callbacks(execute=True):
        org_services.membership_remove(
            membership=Membership.objects.get(organization=organization, user=member), actor=owner
        )
    assert api_key_verify(key).principal().scopes == {"orders:read"}  # portal scopes stripped
    with django_capture_on_commit_callbacks(execute=True):
        _invitation, token = org_services.invitation_create(
            organization=organization, email=member.email, role="member", actor=owner
        )
    with django_capture_on_commit_callbacks(execute=True):
        org_services.invitation_accept(token=token, user=member)
    assert Membership.objects.get(organization=organization, user=member).role == "member"
    whoami = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/whoami").json()
    assert whoami["scopes"] == ["api_keys:manage", "orders:read"], (
        "the key still acts as if its owner were no member: the cached snapshot holds role None"
    )


@pytest.mark.django_db
def test_an_after_commit_write_that_lands_after_a_later_writers_is_stored_again(
    redis_cache, monkeypatch, organization, owner, admin_user, make_key, django_capture_on_commit_callbacks
):
    """T1 commits and reads the key (active); before T1's write reaches Redis, T2 revokes the key,
    commits, reads and stores "revoked"; then T1's write lands. T1 reads again after writing, sees
    the newer state, and stores it."""
    key, plaintext = make_key(owner=admin_user, name="contended")
    assert api_key_verify(plaintext).valid
    membership = Membership.objects.get(organization=organization, user=admin_user)
    with django_capture_on_commit_callbacks() as demotion_commit:  # T1 has committed; its store waits
        org_services.membership_change_role(membership=membership, role="member", actor=owner)
    real_replace = hotcache.replace
    overtaken = []

    def replace_overtaken_once(entries, timeout):
        if not overtaken:  # T1's first write: T2 commits and publishes before it lands
            overtaken.append(entries)
            with django_capture_on_commit_callbacks(execute=True):
                api_key_revoke(api_key=ApiKey.objects.get(pk=key.pk), actor=owner, reason="leaked")
            assert api_key_verify(plaintext).code == "revoked"
        real_replace(entries, timeout)

    monkeypatch.setattr(hotcache, "replace", replace_overtaken_once)
    for callback in demotion_commit:
        callback()
    assert overtaken and next(iter(overtaken[0].values()))["status"] == "active"  # T1's read was stale
    outcome = api_key_verify(plaintext)
    assert not outcome.valid and outcome.code == "revoked", "T1's late write revived the revoked key"
