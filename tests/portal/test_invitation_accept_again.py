"""An invitation accepted again: by its invitee it joins them (nothing more written); else refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent, Membership, Role
from portal.services import organizations as svc
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invitee():
    return UserFactory(email="new@x.test")


@pytest.fixture
def token(organization, owner, invitee) -> str:
    _invitation, token = svc.invitation_create(
        organization=organization, email=invitee.email, role=Role.MEMBER, actor=owner
    )
    return token


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_invitees_second_post_goes_to_the_organisation_too(organization, invitee, token):
    """A second click arriving after the first one's commit (or the form sent again) is not an error."""
    client = _signed_in(invitee)
    path = reverse("invitation-accept", args=[token])
    home = reverse("org-home", args=[organization.slug])
    first, again = client.post(path), client.post(path)
    assert (first.status_code, first["Location"]) == (302, home)
    assert (again.status_code, again["Location"]) == (302, home)
    assert Membership.objects.filter(user=invitee, organization=organization).count() == 1
    assert AuditEvent.objects.filter(action="portal.invitation.accepted").count() == 1
    assert AuditEvent.objects.filter(action="portal.membership.created").count() == 1


def test_accepting_again_returns_the_membership_and_writes_nothing(organization, invitee, token):
    membership = svc.invitation_accept(token=token, user=invitee)
    events = AuditEvent.objects.count()
    assert svc.invitation_accept(token=token, user=invitee) == membership
    assert AuditEvent.objects.count() == events


def test_an_invitation_accepted_by_someone_else_is_refused_in_words(organization, invitee, token):
    svc.invitation_accept(token=token, user=invitee)
    invitee.email = "moved@x.test"  # the address given to another account since
    invitee.save(update_fields=["email"])
    other = UserFactory(email="new@x.test")
    with pytest.raises(ValidationError) as refused:
        svc.invitation_accept(token=token, user=other)
    assert (refused.value.code, refused.value.messages) == (
        "accepted",
        ["This invitation was already accepted."],
    )
    response = _signed_in(other).post(reverse("invitation-accept", args=[token]))
    assert response.status_code == 410 and "already been accepted" in response.content.decode()
    assert not Membership.objects.filter(user=other, organization=organization).exists()


def test_a_removed_member_does_not_rejoin_with_the_link_they_accepted(organization, owner, invitee, token):
    client = _signed_in(invitee)
    path = reverse("invitation-accept", args=[token])
    assert client.post(path).status_code == 302
    svc.membership_remove(
        membership=Membership.objects.get(user=invitee, organization=organization),
        actor=owner,
        actor_membership=Membership.objects.get(user=owner, organization=organization),
    )
    with pytest.raises(ValidationError) as refused:
        svc.invitation_accept(token=token, user=invitee)
    assert refused.value.code == "accepted"
    response = client.post(path)
    assert response.status_code == 410 and "already been accepted" in response.content.decode()
    assert not Membership.objects.filter(user=invitee, organization=organization).exists()
