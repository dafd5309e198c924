"""`complete_cutovers` takes its row locks in the one order, and one key's database error spares the rest.

What was wrong: the cut-over locked the moved key, then its application, then (inside
`api_key_revoke`) the key's waiting requests; an approval locks its request, then the key. Racing an
admin's approval of a scope increase on the same key, the two deadlocked and PostgreSQL failed one
(the admin's approval, a 500; or the cron run, which then stopped with every later key left
unrevoked). Now the cut-over locks the requests first, and a database error on one key is logged
and the run goes on.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, OperationalError
from django.utils import timezone

from credentials.api_keys import cutover
from credentials.api_keys.models import ApiKey
from credentials.governance.approvals import credential_request_approve, credential_request_create
from credentials.governance.models import CredentialRequest, CredentialState, RequestState
from tests.support.threads import pause_in, run_together
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.models import ClientSecret, M2MApplication


def moved_and_quiet(make_key, owner, name: str) -> ApiKey:
    """Return a key moved three days ago, unused since, its owner opted in to the automatic revoke."""
    api_key, _ = make_key(name=name, scopes=["orders:read"])
    api_key_move_to_m2m_app(api_key=api_key, actor=owner)
    three_days_ago = timezone.now() - timedelta(days=3)
    M2MApplication.objects.filter(moved_from_key=api_key).update(created=three_days_ago)
    ClientSecret.objects.filter(application__moved_from_key=api_key).update(created_at=three_days_ago)
    ApiKey.objects.filter(pk=api_key.pk).update(cutover_quiet_hours=1, cutover_auto_revoke=True)
    return ApiKey.objects.get(pk=api_key.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_cutover_racing_an_approval_on_the_same_key_does_not_deadlock(
    require_postgres, make_key, owner, admin_user, monkeypatch
):
    api_key = moved_and_quiet(make_key, owner, "nightly export")
    request = credential_request_create(
        credential=api_key,
        requester=owner,
        request_type="scope_increase",
        justification="the export needs to write",
        requested_scopes=["orders:read", "orders:write"],
    )

    # The cron run has locked what it locks before the application when the admin approves.
    locked = pause_in(monkeypatch, cutover, "_lock_application", thread="cron", seconds=1.5)

    def approve():
        locked.wait(timeout=10)
        return credential_request_approve(
            request=CredentialRequest.objects.get(pk=request.pk), actor=admin_user
        )

    results = run_together(("cron", cutover.cutovers_complete), ("approve", approve), timeout=60)
    failed = {name: repr(r) for name, r in results.items() if isinstance(r, DatabaseError)}
    assert failed == {}, failed
    # The cron run went first (the admin waited for the request's lock): the key is revoked and
    # its waiting request closed; the approval then finds it closed and says so (no 500).
    assert [key.pk for key in results["cron"]] == [api_key.pk], results
    assert ApiKey.objects.get(pk=api_key.pk).status == CredentialState.REVOKED
    assert CredentialRequest.objects.get(pk=request.pk).state == RequestState.CANCELLED
    assert isinstance(results["approve"], ValidationError), results["approve"]


@pytest.mark.django_db
def test_a_database_error_on_one_key_does_not_stop_the_run(make_key, owner, monkeypatch, caplog):
    failing = moved_and_quiet(make_key, owner, "first export")
    other = moved_and_quiet(make_key, owner, "second export")
    real = cutover._lock_application

    def lock_application(key):
        if key.pk == failing.pk:
            raise OperationalError("canceling statement due to lock timeout")
        return real(key)

    monkeypatch.setattr(cutover, "_lock_application", lock_application)
    with caplog.at_level(logging.WARNING, logger="credentials.api_keys.cutover"):
        revoked = cutover.cutovers_complete()

    assert [key.pk for key in revoked] == [other.pk]
    assert ApiKey.objects.get(pk=other.pk).status == CredentialState.REVOKED
    assert ApiKey.objects.get(pk=failing.pk).status == CredentialState.ACTIVE  # tried again next run
    assert any(failing.key_id in record.getMessage() for record in caplog.records), caplog.text
