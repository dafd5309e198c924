"""A trust requested while its application's runtime policy changes (PostgreSQL, real locks).

`federated_identity_create` locks the owner's membership, then the policy row (which decides
whether the trust waits for approval; its request locks the row again), then the application:
the order every write keeps (docs/governance.md). A runtime-policy change locks the policy row,
then the application. So the two wait for each other instead of deadlocking.
"""

from __future__ import annotations

import threading
import time

import pytest

from credentials.governance import ownership
from credentials.governance.edits import credential_policy_set
from credentials.governance.org_policy import policy_update
from tests.support.threads import run_together
from tokens.federation.services import federated_identity_create
from tokens.models import FederatedIdentity, M2MApplication

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LIMIT = {"requests": 10, "per_seconds": 60}


def test_a_trust_requested_while_its_applications_runtime_policy_changes(
    require_postgres, monkeypatch, organization, owner, member, make_app
):
    """Both succeed, one after the other: the trust waits for approval, the application has its limit."""
    app = make_app(app_owner=member, name="deployer").application
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    locked = threading.Event()
    real_check = ownership.check_owner_unchanged

    def paused_check(*args, **kwargs):
        if threading.current_thread().name == "trust":
            locked.set()  # federated_identity_create holds the application's row lock by now
            time.sleep(1.0)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(ownership, "check_owner_unchanged", paused_check)

    def add_trust():
        return federated_identity_create(
            application=M2MApplication.objects.get(pk=app.pk),
            actor=member,
            issuer="https://ci.example.com",
            subject="repo:acme/deploy:ref:refs/heads/main",
            preset="custom",
            justification="deploys from CI",
        )

    def change_policy():
        assert locked.wait(timeout=10)
        return credential_policy_set(
            credential=M2MApplication.objects.get(pk=app.pk), actor=owner, rate_limit=LIMIT
        )

    results = run_together(("trust", add_trust), ("policy", change_policy))
    aborted = {name: r for name, r in results.items() if isinstance(r, BaseException)}
    assert not aborted, f"one side was aborted: {aborted!r}"
    identity, request = results["trust"]
    assert identity.status == FederatedIdentity.Status.PENDING and request is not None
    assert M2MApplication.objects.get(pk=app.pk).rate_limit == LIMIT
