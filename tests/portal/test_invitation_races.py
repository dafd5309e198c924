"""An invitation accepted while its inviter is demoted or removed, while it is resent, or twice at
once by its invitee (PostgreSQL).

Accepting locks the inviter's membership before the invitation, the order a demotion or a
removal takes them (membership, then that person's invitations): one waits for the other,
and the invitation grants only what its inviter may still grant. Under the lock the token must
still be the invitation's: a resend's old link does not accept. The invitee's second click
finds it accepted by them and joins them too, writing nothing more.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent, Membership, Role
from portal.services import organizations as svc
from tests.factories import MembershipFactory, UserFactory
from tests.support.threads import at_once, run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _client(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.mark.parametrize("change", ["demote", "remove"])
def test_accepting_while_the_inviter_loses_the_role_does_not_deadlock(
    require_postgres, organization, monkeypatch, change
):
    owner = MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="o@x.test")
    ).user
    inviter = MembershipFactory(
        organization=organization, role=Role.ADMIN, user=UserFactory(email="x@x.test")
    )
    invitee = UserFactory(email="new@x.test")
    _invitation, token = svc.invitation_create(
        organization=organization,
        email=invitee.email,
        role=Role.ADMIN,
        actor=inviter.user,
        actor_membership=inviter,
    )
    locked = threading.Event()
    real_check = svc._check_inviter_may_grant

    def check_after_the_change_started(invitation):
        if threading.current_thread().name == "accept":
            locked.set()  # the invitation's row is locked by now
            time.sleep(1.0)  # the change locks the inviter's membership, then waits on the invitation
        return real_check(invitation)

    monkeypatch.setattr(svc, "_check_inviter_may_grant", check_after_the_change_started)
    c_invitee, c_owner = _client(invitee), _client(owner)

    def accept():
        return c_invitee.post(reverse("invitation-accept", args=[token]))

    def change_inviter():
        assert locked.wait(timeout=10)
        if change == "demote":
            return c_owner.post(
                reverse("org-member-role", args=[organization.slug, inviter.pk]), {"role": "member"}
            )
        return c_owner.post(reverse("org-member-remove", args=[organization.slug, inviter.pk]))

    results = run_together(("accept", accept), ("change", change_inviter))
    statuses = {name: getattr(r, "status_code", repr(r)) for name, r in results.items()}
    # A deadlock victim is answered by DatabaseOutageMiddleware: 503 "database unavailable".
    assert all(isinstance(s, int) and s < 500 for s in statuses.values()), statuses
    # One consistent outcome: the inviter lost the role, and the invitee is an admin only if
    # the acceptance came first.
    assert not Membership.objects.filter(pk=inviter.pk, role=Role.ADMIN).exists()


def test_the_old_link_does_not_accept_once_a_resend_replaced_it(require_postgres, organization, monkeypatch):
    # invitation_resend: the old link stops working, even for an accept that found the invitation
    # by it and then waited on its row lock while the resend replaced the digest.
    owner = MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="o@x.test")
    ).user
    invitee = UserFactory(email="new@x.test")
    invitation, old_token = svc.invitation_create(
        organization=organization, email=invitee.email, role=Role.MEMBER, actor=owner
    )
    resaved = threading.Event()
    real_audit = svc._audit

    def held_audit(action, target, **kwargs):
        real_audit(action, target, **kwargs)
        if threading.current_thread().name == "resend":
            resaved.set()  # the new digest is written, the row still locked
            time.sleep(1.0)

    monkeypatch.setattr(svc, "_audit", held_audit)

    def resend():
        return svc.invitation_resend(invitation=type(invitation).objects.get(pk=invitation.pk), actor=owner)[
            1
        ]

    def accept_with_the_old_link():
        assert resaved.wait(timeout=10)
        return svc.invitation_accept(token=old_token, user=invitee)

    results = run_together(("resend", resend), ("accept", accept_with_the_old_link))
    assert isinstance(results["resend"], str), results
    assert not Membership.objects.filter(organization=organization, user=invitee).exists(), (
        f"the replaced link still accepted the invitation: {results}"
    )


def test_invitation_double_click_by_signed_in_invitee(require_postgres, organization):
    """Both clicks are the same person joining: each answers with the organisation's home (the page
    the browser keeps is the later one), one membership, one acceptance in the audit log."""
    inviter = MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="o@x.test")
    ).user
    invitee = UserFactory(email="new@x.test")
    _, token = svc.invitation_create(
        organization=organization, email="new@x.test", role="member", actor=inviter
    )
    path = reverse("invitation-accept", args=[token])
    c1 = _client(invitee)
    c2 = _client(invitee)
    c2.cookies = c1.cookies  # one browser, one session
    results = at_once({"a": lambda: c1.post(path), "b": lambda: c2.post(path)})
    assert Membership.objects.filter(user=invitee, organization=organization).count() == 1
    assert AuditEvent.objects.filter(action="portal.invitation.accepted").count() == 1
    loser = [r for r in results.values() if getattr(r, "status_code", None) != 302]
    shown = [str(m) for r in loser if hasattr(r, "context") for m in r.context["messages"]]
    home = reverse("org-home", args=[organization.slug])
    assert [getattr(r, "url", r) for r in results.values()] == [home, home], shown
