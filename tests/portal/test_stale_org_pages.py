"""Pages of an organisation the person was removed from (or that was deleted) while open; no organisation
left; the navigation follows the role in the organisation of the URL."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.models import Membership, Role
from portal.services import organizations as org_services
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    user = UserFactory(email="multi@example.test")
    alpha = OrganizationFactory(slug="alpha", name="Alpha")
    bravo = OrganizationFactory(slug="bravo", name="Bravo")
    boss = MembershipFactory(organization=alpha, role=Role.OWNER, user=UserFactory(email="boss@alpha.test"))
    mine = MembershipFactory(user=user, organization=alpha, role=Role.ADMIN)
    MembershipFactory(user=user, organization=bravo, role=Role.MEMBER)
    MembershipFactory(organization=bravo, role=Role.OWNER)
    client = Client()
    client.force_login(user)
    return user, alpha, bravo, boss, mine, client


def test_removed_while_a_page_is_open_next_requests_are_clean_404s(setup):
    user, alpha, bravo, boss, mine, client = setup
    assert client.get("/orgs/alpha/members/").status_code == 200  # the page is open
    org_services.membership_remove(membership=mine, actor=boss.user, actor_membership=boss)
    for path in ("/orgs/alpha/", "/orgs/alpha/members/", "/orgs/alpha/audit/", "/orgs/alpha/api-keys/"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert b"Alpha" not in response.content
    response = client.post("/orgs/alpha/members/invite/", {"email": "x@example.test", "role": "member"})
    assert response.status_code == 404
    # The landing page forgets the organisation the session last used.
    assert client.get("/")["Location"] == "/orgs/bravo/"
    # The switcher no longer offers it, and the one left needs no switcher.
    page = client.get("/orgs/bravo/").content.decode()
    assert "Alpha" not in page


def test_removed_from_every_organisation_sees_a_sensible_page(setup):
    user, alpha, bravo, boss, mine, client = setup
    Membership.objects.filter(user=user).delete()
    response = client.get("/")
    assert response.status_code == 200
    assert b"not in an organisation yet" in response.content
    assert b"org-switcher" not in response.content and b"sidenav" not in response.content


def test_nav_follows_the_role_in_the_organisation_in_the_url(setup):
    user, alpha, bravo, boss, mine, client = setup
    admin_page = client.get("/orgs/alpha/").content.decode()
    member_page = client.get("/orgs/bravo/").content.decode()
    assert "/orgs/alpha/audit/" in admin_page and "/orgs/alpha/approvals/" in admin_page
    assert "/orgs/bravo/audit/" not in member_page and "/orgs/bravo/approvals/" not in member_page
    assert "/orgs/alpha/" not in member_page.replace('value="alpha"', "")
    # A member of Bravo cannot reach its manager pages even though they manage Alpha.
    assert client.get("/orgs/bravo/audit/").status_code == 403


def test_organisation_deleted_while_a_page_is_open(setup):
    user, alpha, bravo, boss, mine, client = setup
    assert client.get("/orgs/alpha/").status_code == 200
    alpha.delete()
    assert client.get("/orgs/alpha/").status_code == 404
    assert client.get("/")["Location"] == "/orgs/bravo/"
