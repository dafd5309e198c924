"""An application's revocation racing the activation of one of its approved trusts, or a decision on
a request about it (PostgreSQL).

Its trusts go with a revoked application (m2m_app_revoke); the activation locks the application,
so it either sees the revocation and refuses, or commits first and is closed with the others. The
revocation locks the waiting requests and trusts before the application, in the order a decision
and an activation take them, so neither deadlocks with it.
"""

from __future__ import annotations

import threading
import time

import pytest

from credentials.governance import approvals
from credentials.governance.org_policy import policy_update
from tests.support.threads import pause_in, run_together
from tests.tokens.federation.test_federation import request_trust
from tokens.clients.services import m2m_app_revoke
from tokens.models import FederatedIdentity, M2MApplication

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_trust_activated_while_its_application_is_revoked_is_not_left_active(
    require_postgres, monkeypatch, organization, owner, member, make_app
):
    app = make_app(app_owner=member, name="deployer").application
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    identity, request = request_trust(app, member)
    approvals.credential_request_approve(request=request, actor=owner)

    activated = threading.Event()
    real_save = approvals.save_fields

    def held_save(credential, kind, *fields):
        real_save(credential, kind, *fields)
        if threading.current_thread().name == "activate":
            activated.set()  # it checked the application was active, and wrote the trust active
            time.sleep(1.0)

    monkeypatch.setattr(approvals, "save_fields", held_save)

    def activate():
        approvals.credential_secret_issue(
            credential=FederatedIdentity.objects.get(pk=identity.pk), actor=member
        )

    def revoke():
        assert activated.wait(timeout=10)
        m2m_app_revoke(application=M2MApplication.objects.get(pk=app.pk), actor=owner)

    results = run_together(("activate", activate), ("revoke", revoke))
    app = M2MApplication.objects.get(pk=app.pk)
    identity = FederatedIdentity.objects.get(pk=identity.pk)
    assert app.status == M2MApplication.Status.REVOKED, results
    assert identity.status != FederatedIdentity.Status.ACTIVE, (
        f"an active trust of a revoked application; {results}"
    )


def test_an_application_revoked_while_a_trust_is_being_activated_waits_for_it(
    require_postgres, monkeypatch, organization, owner, member, make_app
):
    """The activation holds the trust when the revocation starts: the revocation waits (it locks the
    application's waiting trusts before the application, as the activation does) instead of taking
    the application the activation needs next (a deadlock: one of them aborted)."""
    app = make_app(app_owner=member, name="deployer").application
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    identity, request = request_trust(app, member)
    approvals.credential_request_approve(request=request, actor=owner)

    # credential_secret_issue holds the trust's lock, not yet the application's, when it pauses.
    holds_trust = pause_in(monkeypatch, approvals, "approved_create_request", thread="activate")

    def activate():
        return approvals.credential_secret_issue(
            credential=FederatedIdentity.objects.get(pk=identity.pk), actor=member
        )

    def revoke():
        assert holds_trust.wait(timeout=10)
        return m2m_app_revoke(application=M2MApplication.objects.get(pk=app.pk), actor=owner)

    results = run_together(("activate", activate), ("revoke", revoke))
    aborted = {name: r for name, r in results.items() if isinstance(r, BaseException)}
    assert not aborted, f"one side was aborted: {aborted!r}"
    identity = FederatedIdentity.objects.get(pk=identity.pk)
    assert identity.status == FederatedIdentity.Status.REVOKED  # activated, then closed with the rest


def test_an_application_revoked_while_its_scope_increase_is_approved_waits_for_it(
    require_postgres, monkeypatch, organization, owner, admin_user, member, make_app
):
    """The approval holds the request, then locks the application: the revocation locks the waiting
    requests first, so it waits for the decision instead of deadlocking with it."""
    app = make_app(app_owner=member, name="reporter", scopes=["orders:read"]).application
    request = approvals.credential_request_create(
        credential=app,
        requester=member,
        request_type="scope_increase",
        justification="needs writes",
        requested_scopes=["orders:read", "orders:write"],
    )

    # _open_decision holds the request's lock, not yet the application's, when it pauses.
    holds_request = pause_in(monkeypatch, approvals, "policy_locked", thread="approve")

    def approve():
        return approvals.credential_request_approve(request=request, actor=admin_user)

    def revoke():
        assert holds_request.wait(timeout=10)
        return m2m_app_revoke(application=M2MApplication.objects.get(pk=app.pk), actor=owner)

    results = run_together(("approve", approve), ("revoke", revoke))
    aborted = {name: r for name, r in results.items() if isinstance(r, BaseException)}
    assert not aborted, f"one side was aborted: {aborted!r}"
    assert results["approve"].state == "approved"
    assert M2MApplication.objects.get(pk=app.pk).status == M2MApplication.Status.REVOKED
