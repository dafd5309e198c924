"""Invitations at their edges: an address longer than its column, and an inviter whose account staff
switched off (an invitation carries its inviter's authority, docs/security.md)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent, Invitation, Membership, Role
from portal.services import organizations as svc
from tests.factories import MembershipFactory, UserFactory, enrol_totp

pytestmark = pytest.mark.django_db

# A well-formed address of 260 characters: Django's forms.EmailField takes up to 320, while
# Invitation.email (a models.EmailField) holds 254.
LONG_EMAIL = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".com"


def _owner_invitation(organization, owner, email: str) -> tuple[Invitation, str]:
    return svc.invitation_create(
        organization=organization,
        email=email,
        role=Role.OWNER,
        actor=owner,
        actor_membership=Membership.objects.get(user=owner, organization=organization),
    )


def test_an_address_longer_than_the_column_is_a_field_error(owner_client, organization):
    """The invite form refuses what Invitation.email cannot hold: a 400 naming the field, not a
    PostgreSQL DataError (a 500) nor, on SQLite, a row longer than the model allows."""
    owner_client.raise_request_exception = False
    response = owner_client.post(
        reverse("org-invite", args=[organization.slug]), {"email": LONG_EMAIL, "role": "member"}
    )
    assert response.status_code == 400
    assert "email" in response.context["invite_form"].errors
    assert not Invitation.objects.filter(email=LONG_EMAIL).exists()


def test_a_switched_off_owners_owner_invitation_grants_nothing(organization, owner):
    """A deactivated account lends no role (portal.selectors.authority_memberships), so an owner
    invitation it sent (to an attacker's address, say) makes no owner once staff switch it off."""
    MembershipFactory(organization=organization, role=Role.OWNER, user=UserFactory(email="second@acme.test"))
    _invitation, token = _owner_invitation(organization, owner, "attacker@evil.test")
    owner.is_active = False  # what the admin's *Active* switch writes
    owner.save()

    with pytest.raises(ValidationError) as refused:
        svc.invitation_accept(token=token, user=UserFactory(email="attacker@evil.test"))
    assert refused.value.code == "inviter_lost_role"
    assert not Membership.objects.filter(user__email="attacker@evil.test").exists()


def test_switching_an_account_off_in_the_admin_revokes_the_invitations_it_sent(organization, owner):
    """The invitation is shown revoked (audited, `reason: inviter_lost_role`), as when its inviter
    is removed, rather than left open in the list while it can grant nothing."""
    MembershipFactory(organization=organization, role=Role.OWNER, user=UserFactory(email="second@acme.test"))
    invitation, _token = _owner_invitation(organization, owner, "new-owner@acme.test")
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)
    admin = Client()
    admin.force_login(staff)

    form = {
        "email": owner.email,
        "full_name": owner.full_name,
        "date_joined_0": owner.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": owner.date_joined.strftime("%H:%M:%S"),
    }  # "is_active" unticked
    response = admin.post(reverse("admin:portal_user_change", args=[owner.pk]), form)
    assert response.status_code == 302, response.content[:500]

    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    revoked = AuditEvent.objects.get(action="portal.invitation.revoked", target_id=str(invitation.pk))
    assert (revoked.actor, revoked.extra["reason"]) == (staff, "inviter_lost_role")
