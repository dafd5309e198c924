"""Invitations over their life: an inviter who lost their role grants nothing; an expired invitation
never blocks the address."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from portal.models import Invitation, Membership, Role
from portal.services import organizations as svc
from tests.factories import UserFactory


def _membership(user, organization):
    return Membership.objects.get(user=user, organization=organization)


@pytest.mark.django_db
def test_removed_admin_pending_admin_invitation_no_longer_grants_admin(organization, owner, admin_user):
    """An admin invites a second address of theirs as admin, then is removed; the link must not
    bring manager power back (changes of who holds power are re-evaluated, the authority rule)."""
    admin_membership = _membership(admin_user, organization)
    _, token = svc.invitation_create(
        organization=organization,
        email="alt-of-admin@example.test",
        role=Role.ADMIN,
        actor=admin_user,
        actor_membership=admin_membership,
    )
    svc.membership_remove(
        membership=admin_membership, actor=owner, actor_membership=_membership(owner, organization)
    )

    alt = UserFactory(email="alt-of-admin@example.test")
    try:
        membership = svc.invitation_accept(token=token, user=alt)
    except ValidationError:
        return  # refused: fine
    assert membership.role != Role.ADMIN, "a removed admin's invitation still made someone admin"


@pytest.mark.django_db
def test_demoted_admin_pending_admin_invitation_no_longer_grants_admin(organization, owner, admin_user):
    admin_membership = _membership(admin_user, organization)
    _, token = svc.invitation_create(
        organization=organization,
        email="friend@example.test",
        role=Role.ADMIN,
        actor=admin_user,
        actor_membership=admin_membership,
    )
    svc.membership_change_role(
        membership=admin_membership,
        role=Role.MEMBER,
        actor=owner,
        actor_membership=_membership(owner, organization),
    )
    friend = UserFactory(email="friend@example.test")
    try:
        membership = svc.invitation_accept(token=token, user=friend)
    except ValidationError:
        return
    assert membership.role != Role.ADMIN, "a demoted admin's invitation still made someone admin"


@pytest.mark.django_db
def test_an_expired_invitation_does_not_block_inviting_the_address_again(owner_client, organization):
    url = reverse("org-invite", args=[organization.slug])
    first = owner_client.post(url, {"email": "late@example.test", "role": "member"})
    assert first.status_code == 302
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    again = owner_client.post(url, {"email": "late@example.test", "role": "member"})
    # Expected: a new invitation (the old one can no longer be accepted, revoked, nor resent).
    assert again.status_code == 302, again.content.decode()[:3000]
    assert Invitation.objects.filter(email="late@example.test").count() == 2


@pytest.mark.django_db
def test_an_expired_invitation_can_be_cleared_from_the_dashboard(owner_client, organization, owner):
    """If re-inviting is refused while an expired invitation exists, the owner must at least be
    able to revoke or resend it; both are refused as 'no longer open'."""
    invitation, _ = svc.invitation_create(
        organization=organization, email="late@example.test", role="member", actor=owner
    )
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    owner_client.post(reverse("org-invitation-revoke", args=[organization.slug, invitation.pk]))
    owner_client.post(reverse("org-invitation-resend", args=[organization.slug, invitation.pk]))
    response = owner_client.post(
        reverse("org-invite", args=[organization.slug]), {"email": "late@example.test", "role": "member"}
    )
    assert response.status_code == 302, "no way left in the dashboard to invite this address again"
