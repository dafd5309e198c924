"""The landing page and the brand link go to the organisation last worked in.

Only an organisation's overview used to remember it: after working in Bravo's keys (from a
bookmark or an e-mail's link), the brand link and `/` went back to Alpha. Now every organisation
page remembers it, for a person in several, writing the session only when the organisation changes;
the brand link on an organisation's page goes to that organisation's overview.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from portal.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_in_two():
    user = UserFactory(email="multi@example.test")
    for slug, name, role in (("alpha", "Alpha", Role.ADMIN), ("bravo", "Bravo", Role.MEMBER)):
        MembershipFactory(user=user, organization=OrganizationFactory(slug=slug, name=name), role=role)
    client = Client()
    client.force_login(user)
    return client


def test_the_landing_page_goes_to_the_organisation_last_worked_in(client_in_two):
    assert client_in_two.get("/orgs/alpha/").status_code == 200
    page = client_in_two.get("/orgs/bravo/api-keys/")  # never through Bravo's overview
    assert page.status_code == 200
    assert '<a class="brand" href="/orgs/bravo/">' in page.content.decode()
    assert client_in_two.get("/")["Location"] == "/orgs/bravo/"
    # And back to Alpha's members page.
    assert client_in_two.get("/orgs/alpha/members/").status_code == 200
    assert client_in_two.get("/")["Location"] == "/orgs/alpha/"


def test_pages_of_the_same_organisation_write_no_session(client_in_two):
    first = client_in_two.get("/orgs/alpha/")
    assert settings.SESSION_COOKIE_NAME in first.cookies  # the organisation changed: saved
    for path in ("/orgs/alpha/", "/orgs/alpha/members/", "/orgs/alpha/api-keys/"):
        response = client_in_two.get(path)
        assert response.status_code == 200
        assert settings.SESSION_COOKIE_NAME not in response.cookies, path


def test_pages_outside_an_organisation_link_the_brand_to_the_landing_page(client_in_two):
    page = client_in_two.get("/accounts/sessions/").content.decode()
    assert '<a class="brand" href="/">' in page


def test_a_person_in_one_organisation_has_nothing_to_remember(owner):
    client = Client()
    client.force_login(owner)
    for path in ("/orgs/acme/api-keys/", "/orgs/acme/"):
        response = client.get(path)
        assert response.status_code == 200
        assert settings.SESSION_COOKIE_NAME not in response.cookies, path
    assert client.get("/")["Location"] == "/orgs/acme/"
