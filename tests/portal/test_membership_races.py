"""Concurrent membership and invitation requests (PostgreSQL, real locks): a clear answer, never a
500, and the role a request acts with is the one stored when it writes."""

from __future__ import annotations

import threading
import time

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from portal.models import Membership, Role, User
from portal.services import organizations as svc
from tests.factories import MembershipFactory, UserFactory
from tests.support.threads import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _client(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_double_submitted_member_removal_is_not_a_500(require_postgres, organization, monkeypatch):
    owner = MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="o@x.test")
    ).user
    admin = MembershipFactory(
        organization=organization, role=Role.ADMIN, user=UserFactory(email="a@x.test")
    ).user
    target = MembershipFactory(
        organization=organization, role=Role.MEMBER, user=UserFactory(email="m@x.test")
    )
    barrier = threading.Barrier(2, timeout=10)
    real_lock = svc.lock_owners

    def lock_after_both_looked_up(org):
        # Both requests have resolved the membership (_member_or_404) by now.
        barrier.wait()
        if threading.current_thread().name == "second":
            time.sleep(0.3)
        return real_lock(org)

    monkeypatch.setattr(svc, "lock_owners", lock_after_both_looked_up)
    url = reverse("org-member-remove", args=[organization.slug, target.pk])
    c1, c2 = _client(owner), _client(admin)
    results = run_together(("first", lambda: c1.post(url)), ("second", lambda: c2.post(url)))
    statuses = sorted(getattr(r, "status_code", repr(r)) for r in results.values())
    assert not Membership.objects.filter(pk=target.pk).exists()
    assert 500 not in statuses, statuses


def test_role_change_racing_a_removal_is_not_a_500(require_postgres, organization, monkeypatch):
    owner = MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="o@x.test")
    ).user
    admin = MembershipFactory(
        organization=organization, role=Role.ADMIN, user=UserFactory(email="a@x.test")
    ).user
    target = MembershipFactory(
        organization=organization, role=Role.MEMBER, user=UserFactory(email="m@x.test")
    )
    barrier = threading.Barrier(2, timeout=10)
    real_lock = svc.lock_owners

    def lock_after_both_looked_up(org):
        barrier.wait()
        if threading.current_thread().name == "role":
            time.sleep(0.3)
        return real_lock(org)

    monkeypatch.setattr(svc, "lock_owners", lock_after_both_looked_up)
    c1, c2 = _client(owner), _client(admin)
    results = run_together(
        ("remove", lambda: c1.post(reverse("org-member-remove", args=[organization.slug, target.pk]))),
        (
            "role",
            lambda: c2.post(
                reverse("org-member-role", args=[organization.slug, target.pk]), {"role": "admin"}
            ),
        ),
    )
    statuses = {name: getattr(r, "status_code", repr(r)) for name, r in results.items()}
    assert 500 not in statuses.values(), statuses


def test_double_submitted_invitation_signup_is_not_a_500(require_postgres, organization, monkeypatch):
    owner = MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="o@x.test")
    ).user
    mail.outbox.clear()
    _, token = svc.invitation_create(
        organization=organization, email="new@x.test", role="member", actor=owner
    )
    path = reverse("invitation-accept", args=[token])
    real_create = User.objects.create_user

    def create_after_both_checked(*args, **kwargs):
        time.sleep(0.5)  # long enough for the other request to pass "no account with this email yet"
        return real_create(*args, **kwargs)

    monkeypatch.setattr(User.objects, "create_user", create_after_both_checked)
    data = {"full_name": "New", "password1": "a-long-passphrase-1", "password2": "a-long-passphrase-1"}
    c1, c2 = Client(raise_request_exception=False), Client(raise_request_exception=False)
    results = run_together(("one", lambda: c1.post(path, data)), ("two", lambda: c2.post(path, data)))
    statuses = sorted(getattr(r, "status_code", repr(r)) for r in results.values())
    assert User.objects.filter(email="new@x.test").count() == 1
    assert 500 not in statuses, statuses


def test_an_admin_demoted_mid_request_cannot_still_promote(require_postgres, organization, monkeypatch):
    """The owner demotes admin X while X's own request promotes member Y to admin; X's request was
    authorised at its start (request.membership) and the service never re-reads X's role under the
    lock, so it grants admin after X lost it."""
    owner = MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="o@x.test")
    ).user
    x = MembershipFactory(organization=organization, role=Role.ADMIN, user=UserFactory(email="x@x.test"))
    y = MembershipFactory(organization=organization, role=Role.MEMBER, user=UserFactory(email="y@x.test"))
    barrier = threading.Barrier(2, timeout=10)
    real_lock = svc.lock_owners

    def lock_after_both_authorised(org):
        barrier.wait()
        if threading.current_thread().name == "x-promotes-y":
            time.sleep(0.3)  # the demotion commits first
        return real_lock(org)

    monkeypatch.setattr(svc, "lock_owners", lock_after_both_authorised)
    c_owner, c_x = _client(owner), _client(x.user)
    results = run_together(
        (
            "owner-demotes-x",
            lambda: c_owner.post(
                reverse("org-member-role", args=[organization.slug, x.pk]), {"role": "member"}
            ),
        ),
        (
            "x-promotes-y",
            lambda: c_x.post(reverse("org-member-role", args=[organization.slug, y.pk]), {"role": "admin"}),
        ),
    )
    assert {n: getattr(r, "status_code", repr(r)) for n, r in results.items()} == {
        "owner-demotes-x": 302,
        "x-promotes-y": 302,
    }
    x.refresh_from_db()
    y.refresh_from_db()
    assert x.role == Role.MEMBER
    assert y.role == Role.MEMBER, "a demoted admin's in-flight request still granted admin"
