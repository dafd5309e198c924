"""A member's removal racing writes on their credentials and requests (PostgreSQL, real locks).

Every write takes its locks in one order: memberships, then the policy row, then credentials
(docs/governance.md). So a reassignment to a member and the removal of the former owner never
deadlock, a credential given to a member is never orphaned, and a request made while its
requester is removed is cancelled with their other waiting requests.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.core.exceptions import ValidationError

from credentials.api_keys.models import ApiKey
from credentials.governance import approvals, ownership
from credentials.governance.models import CredentialRequest, RequestState, RequestType
from credentials.governance.org_policy import policy_update
from portal.models import Membership
from portal.services import organizations as org_services
from tests.support.threads import run_together
from tokens.models import M2MApplication

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(monkeypatch, organization, owner, leaver, credential, new_owner, *, remover=None, pause_in=""):
    """Reassign `credential` to `new_owner` while `leaver` is removed; return each side's outcome.

    The reassignment pauses inside `ownership.<pause_in>` (by then it holds the credential's row
    lock or the locks before it) while the removal runs.
    """
    pause_in = pause_in or "check_owner_may_hold"
    locked = threading.Event()
    real_check = getattr(ownership, pause_in)

    def paused_check(*args, **kwargs):
        if threading.current_thread().name == "reassign":
            locked.set()
            time.sleep(1.0)  # the removal takes its locks meanwhile, then waits on the reassignment
        return real_check(*args, **kwargs)

    monkeypatch.setattr(ownership, pause_in, paused_check)

    def reassign():
        ownership.credential_reassign_owner(
            credential=type(credential).objects.get(pk=credential.pk), owner=new_owner, actor=owner
        )

    def remove():
        assert locked.wait(timeout=10)
        membership = Membership.objects.get(organization=organization, user=leaver)
        org_services.membership_remove(membership=membership, actor=remover or owner)

    return run_together(("reassign", reassign), ("remove", remove))


def test_a_key_reassigned_away_from_a_leaver_is_not_orphaned(
    require_postgres, monkeypatch, organization, owner, member, admin_user, make_key
):
    key, _plain = make_key(owner=member, name="handed over")
    results = _race(monkeypatch, organization, owner, member, key, admin_user)
    assert results == {"reassign": None, "remove": None}, results
    key = ApiKey.objects.get(pk=key.pk)
    assert key.owner_id == admin_user.pk
    assert Membership.objects.filter(organization=organization, user=admin_user).exists()
    # Its owner is a member: it must not sit in the orphan queue (nor be suspended as orphaned later).
    assert key.orphaned_at is None, "a credential owned by a current member was marked orphaned"


def test_an_application_reassigned_away_from_a_leaver_is_not_orphaned(
    require_postgres, monkeypatch, organization, owner, member, admin_user, make_app
):
    app = make_app(app_owner=member, name="handed over").application
    results = _race(monkeypatch, organization, owner, member, app, admin_user)
    assert results == {"reassign": None, "remove": None}, results
    app = M2MApplication.objects.get(pk=app.pk)
    assert app.owner_id == admin_user.pk
    assert app.orphaned_at is None, "a credential owned by a current member was marked orphaned"


def test_a_scope_request_made_while_its_requester_is_removed_does_not_stay_waiting(
    require_postgres, monkeypatch, organization, owner, member, make_key
):
    # docs/governance.md: the removal cancels the requests the member still has waiting. The
    # request locks the requester's membership first, so the removal's sweep sees it or it sees
    # the removal.

    policy_update(organization=organization, actor=owner, approve_scope_increases=True)
    key, _plain = make_key(owner=member, name="narrow", scopes=["orders:read"])
    checked = threading.Event()
    real_may_manage = approvals.may_manage

    def held_may_manage(*args, **kwargs):
        allowed = real_may_manage(*args, **kwargs)
        if threading.current_thread().name == "request":
            checked.set()
            time.sleep(1.0)  # the removal runs meanwhile, up to the key's row lock
        return allowed

    monkeypatch.setattr(approvals, "may_manage", held_may_manage)

    def ask():
        approvals.credential_request_create(
            credential=ApiKey.objects.get(pk=key.pk),
            requester=member,
            request_type=RequestType.SCOPE_INCREASE,
            justification="need writes",
            requested_scopes=["orders:read", "orders:write"],
        )

    def remove():
        assert checked.wait(timeout=10)
        membership = Membership.objects.get(organization=organization, user=member)
        org_services.membership_remove(membership=membership, actor=owner)

    results = run_together(("request", ask), ("remove", remove))
    assert results == {"request": None, "remove": None}, results
    assert not Membership.objects.filter(organization=organization, user=member).exists()
    waiting = CredentialRequest.objects.filter(requester=member, state=RequestState.PENDING)
    assert not waiting.exists(), "a former member's request still waits for an approver"


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_handing_a_leavers_credential_to_an_owner_while_removing_them_does_not_deadlock(
    require_postgres, monkeypatch, kind, organization, owner, member, admin_user, make_key, make_app
):
    # The removal locks every owner's membership (lock_owners), then the leaver's credentials; the
    # reassignment locks the new owner's membership before the credential, so neither waits on
    # the other in a cycle (a deadlock would abort one: a 503 and a lost change).
    if kind == "api_key":
        credential, _ = make_key(owner=member, name="handed over")
    else:
        credential = make_app(app_owner=member, name="handed over").application
    results = _race(
        monkeypatch,
        organization,
        owner,
        member,
        credential,
        owner,
        remover=admin_user,
        pause_in="check_owner_is_member",
    )
    unexpected = {
        n: repr(r) for n, r in results.items() if r is not None and not isinstance(r, ValidationError)
    }
    assert not unexpected, unexpected
