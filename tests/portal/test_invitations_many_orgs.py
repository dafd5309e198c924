"""Invitations to several organisations: accepted one by one, while signed in and working in another
organisation, by a new person, and never for someone signed in under another address."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.models import Membership, Role
from portal.services import organizations as org_services
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def _org(slug, name):
    org = OrganizationFactory(slug=slug, name=name)
    owner = MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory(email=f"owner@{slug}.test"))
    return org, owner


def _invite(org_owner, email, role=Role.MEMBER):
    _inv, token = org_services.invitation_create(
        organization=org_owner.organization,
        email=email,
        role=role,
        actor=org_owner.user,
        actor_membership=org_owner,
    )
    return f"/invitations/{token}/"


def test_accepting_invitations_while_signed_in_to_another_organisation():
    alpha, _ = _org("alpha", "Alpha")
    bravo, bravo_owner = _org("bravo", "Bravo")
    charlie, charlie_owner = _org("charlie", "Charlie")
    user = MembershipFactory(
        organization=alpha, role=Role.ADMIN, user=UserFactory(email="pat@example.test")
    ).user
    to_bravo = _invite(bravo_owner, "pat@example.test", Role.ADMIN)
    to_charlie = _invite(charlie_owner, "PAT@example.test", Role.MEMBER)
    client = Client()
    client.force_login(user)
    assert client.get("/orgs/alpha/members/").status_code == 200
    page = client.get(to_bravo)
    assert page.status_code == 200 and b"Join Bravo" in page.content
    response = client.post(to_bravo)
    assert response["Location"] == "/orgs/bravo/"
    assert Membership.objects.get(user=user, organization=bravo).role == Role.ADMIN
    assert Membership.objects.get(user=user, organization=alpha).role == Role.ADMIN
    # Charlie's is still open and accepted on its own.
    assert client.post(to_charlie)["Location"] == "/orgs/charlie/"
    assert Membership.objects.get(user=user, organization=charlie).role == Role.MEMBER
    home = client.get("/orgs/charlie/").content.decode()
    assert all(f'value="{slug}"' in home for slug in ("alpha", "bravo", "charlie"))
    # The last organisation used is where the landing page goes.
    assert client.get("/")["Location"] == "/orgs/charlie/"


def test_new_person_invited_to_two_organisations_accepts_both():
    bravo, bravo_owner = _org("bravo", "Bravo")
    charlie, charlie_owner = _org("charlie", "Charlie")
    to_bravo = _invite(bravo_owner, "new@example.test")
    to_charlie = _invite(charlie_owner, "new@example.test")
    client = Client()
    response = client.post(
        to_bravo,
        {"full_name": "New Person", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"},
    )
    assert response.status_code == 302 and response["Location"] == "/orgs/bravo/", response.content[:500]
    page = client.get(to_charlie)
    assert page.status_code == 200 and b"Accept and join" in page.content
    assert client.post(to_charlie)["Location"] == "/orgs/charlie/"


def test_signed_in_as_someone_else_the_invitation_is_not_accepted_for_them():
    alpha, _ = _org("alpha", "Alpha")
    bravo, bravo_owner = _org("bravo", "Bravo")
    user = MembershipFactory(
        organization=alpha, role=Role.OWNER, user=UserFactory(email="pat@example.test")
    ).user
    to_bravo = _invite(bravo_owner, "someone.else@example.test", Role.ADMIN)
    client = Client()
    client.force_login(user)
    assert b"Sign out and sign in as" in client.get(to_bravo).content
    response = client.post(to_bravo)
    assert response.status_code in (200, 400)
    assert not Membership.objects.filter(user=user, organization=bravo).exists()
