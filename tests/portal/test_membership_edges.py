"""Membership edges: owner invitations, the last active owner, tenancy of members and invitations,
who an invitation may be accepted by."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from portal.models import Invitation, Membership, Role
from portal.services import organizations as svc
from tests.factories import MembershipFactory, UserFactory


def _membership(user, organization):
    return Membership.objects.get(user=user, organization=organization)


@pytest.mark.django_db
def test_admin_cannot_revoke_an_owner_invitation(admin_client_org, organization, owner):
    """Resend of an owner invitation is owner-only (`owner_only`); revoke is not."""
    invitation, _ = svc.invitation_create(
        organization=organization, email="next-owner@example.test", role=Role.OWNER, actor=owner
    )
    admin_client_org.post(reverse("org-invitation-revoke", args=[organization.slug, invitation.pk]))
    invitation.refresh_from_db()
    assert invitation.revoked_at is None, "an admin revoked an owner invitation"


@pytest.mark.django_db
def test_a_deactivated_owner_does_not_count_as_the_remaining_owner(organization, owner):
    """Two owners, one deactivated by staff: the active one may not leave/demote themself and leave
    the organisation with no owner who can sign in."""
    dormant = MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="gone@acme.test", is_active=False)
    )
    assert dormant.user.is_active is False
    with pytest.raises(ValidationError):
        svc.membership_remove(membership=_membership(owner, organization), actor=owner)


@pytest.mark.django_db
def test_deactivated_member_session_is_dead(organization, member):
    client = Client()
    client.force_login(member)
    assert client.get(reverse("org-home", args=[organization.slug])).status_code == 200
    member.is_active = False
    member.save()
    response = client.get(reverse("org-home", args=[organization.slug]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_removed_member_open_session_gets_404(organization, owner, member):
    client = Client()
    client.force_login(member)
    svc.membership_remove(membership=_membership(member, organization), actor=owner)
    assert client.get(reverse("org-home", args=[organization.slug])).status_code == 404
    assert client.get(reverse("org-members", args=[organization.slug])).status_code == 404


@pytest.mark.django_db
def test_other_org_objects_are_404(owner_client, organization, outsider, other_organization):
    inv, _ = svc.invitation_create(
        organization=other_organization, email="x@globex.test", role="member", actor=outsider
    )
    m = _membership(outsider, other_organization)
    for url in (
        reverse("org-invitation-revoke", args=[organization.slug, inv.pk]),
        reverse("org-invitation-resend", args=[organization.slug, inv.pk]),
        reverse("org-member-remove", args=[organization.slug, m.pk]),
    ):
        assert owner_client.post(url).status_code == 404, url
    assert (
        owner_client.post(
            reverse("org-member-role", args=[organization.slug, m.pk]), {"role": "member"}
        ).status_code
        == 404
    )
    inv.refresh_from_db()
    assert inv.revoked_at is None


@pytest.mark.django_db
def test_accepting_invitation_does_not_change_existing_role(organization, owner, member):
    # Invitation made before the person became a member (e.g. added by staff meanwhile).
    Membership.objects.filter(user=member, organization=organization).delete()
    _, token = svc.invitation_create(
        organization=organization, email=member.email, role=Role.ADMIN, actor=owner
    )
    MembershipFactory(organization=organization, user=member, role=Role.MEMBER)
    m = svc.invitation_accept(token=token, user=member)
    assert m.role == Role.MEMBER
    assert Invitation.objects.get().accepted_at is not None


@pytest.mark.django_db
def test_wrong_email_variants_refused(organization, owner):
    _, token = svc.invitation_create(
        organization=organization, email="Dev+ci@Acme.Test", role="member", actor=owner
    )
    for email in ("dev@acme.test", "dev+ci@acme.test.", "dev+ci@acme.test\u200b"):
        with pytest.raises(ValidationError):
            svc.invitation_accept(token=token, user=UserFactory(email=email))
    ok = UserFactory(email="DEV+CI@ACME.TEST")
    assert svc.invitation_accept(token=token, user=ok).role == "member"
