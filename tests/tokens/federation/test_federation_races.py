"""An application's revocation racing the activation of one of its approved trusts (PostgreSQL).

Its trusts go with a revoked application (m2m_app_revoke); the activation locks the application,
so it either sees the revocation and refuses, or commits first and is closed with the others.
"""

from __future__ import annotations

import threading
import time

import pytest

from credentials.governance import approvals
from credentials.governance.org_policy import policy_update
from tests.support.threads import run_together
from tokens.clients.services import m2m_app_revoke
from tokens.federation.services import federated_identity_create
from tokens.models import FederatedIdentity, M2MApplication

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_trust_activated_while_its_application_is_revoked_is_not_left_active(
    require_postgres, monkeypatch, organization, owner, member, make_app
):
    app = make_app(app_owner=member, name="deployer").application
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    identity, request = federated_identity_create(
        application=app,
        actor=member,
        issuer="https://ci.example.com",
        subject="repo:acme/deploy:ref:refs/heads/main",
        preset="custom",
        justification="deploys",
    )
    assert identity.status == FederatedIdentity.Status.PENDING
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
