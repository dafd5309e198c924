"""The organisation switcher in the top bar, for a person in several (or many) organisations.

Two organisations of the same name (names are not unique, slugs are) had the same label, and the
list sorted every capitalised name before any lower-case one. Now a name the person sees more than
once carries its slug, the sidebar shows the current organisation's slug, and the list (and so the
landing page's first organisation) is alphabetical ignoring letter case.
"""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from portal.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = [Role.OWNER, Role.ADMIN, Role.MEMBER]


def _person_in(names: list[str], *, email="multi@example.test"):
    user = UserFactory(email=email)
    orgs = []
    for i, name in enumerate(names):
        org = OrganizationFactory(slug=f"s{i}", name=name)
        MembershipFactory(user=user, organization=org, role=ROLES[i % 3])
        orgs.append(org)
    client = Client()
    client.force_login(user)
    return user, orgs, client


def _options(page: str) -> list[tuple[str, str]]:
    """Return the switcher's (value, visible text) pairs."""
    form = re.search(r'<form class="org-switcher".*?</form>', page, re.S)
    assert form, "no switcher on the page"
    return [
        (value, html.unescape(text).strip())
        for value, text in re.findall(r'<option value="([^"]*)"[^>]*>(.*?)</option>', form.group(0), re.S)
    ]


def test_two_organisations_of_the_same_name_are_told_apart_by_their_slug():
    _user, orgs, client = _person_in(["Acme", "ACME", "Globex"])
    page = client.get(f"/orgs/{orgs[0].slug}/").content.decode()
    assert _options(page) == [("s0", "Acme (s0)"), ("s1", "ACME (s1)"), ("s2", "Globex")]
    # The sidebar names the organisation the page is about, its slug under the name.
    assert re.search(r'class="sidenav-title">Acme</p>\s*<p class="sidenav-slug"[^>]*>s0</p>', page)


def test_switcher_and_landing_page_order_ignores_letter_case():
    names = ["zenith", "Beta Ltd", "acme corp", "Delta", "charlie & co"]
    _user, orgs, client = _person_in(names)
    texts = [text for _value, text in _options(client.get(f"/orgs/{orgs[0].slug}/").content.decode())]
    assert texts == sorted(names, key=str.casefold)
    # Without an organisation last worked in, the landing page goes to the first of that list.
    fresh = Client()
    fresh.force_login(_user)
    assert fresh.get("/")["Location"] == f"/orgs/{orgs[names.index('acme corp')].slug}/"


def test_hostile_names_are_escaped_and_the_current_one_is_selected():
    hostile = '<script>alert("x")</script>'
    _user, orgs, client = _person_in([hostile, "Plain", "x" * 200])
    for url in (f"/orgs/{orgs[0].slug}/", f"/orgs/{orgs[0].slug}/members/", "/accounts/sessions/"):
        page = client.get(url).content.decode()
        assert "<script>alert" not in page, url
    page = client.get(f"/orgs/{orgs[1].slug}/").content.decode()
    selected = re.findall(r'<option value="([^"]*)" selected>', page)
    assert selected == [orgs[1].slug]


def test_switch_without_javascript_goes_to_the_chosen_organisation_only_if_a_member():
    _user, orgs, client = _person_in(["A", "B"])
    outsider_org = OrganizationFactory(slug="elsewhere", name="Elsewhere")
    assert client.get("/", {"org": orgs[1].slug})["Location"] == f"/orgs/{orgs[1].slug}/"
    # Not a member: the first organisation, never the one asked for.
    assert client.get("/", {"org": outsider_org.slug})["Location"] == f"/orgs/{orgs[0].slug}/"
    # An absolute URL is no redirect target.
    assert client.get("/", {"org": "https://evil.example/"})["Location"] == f"/orgs/{orgs[0].slug}/"


def _queries(client, url):
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code in (200, 302, 404), (url, response.status_code)
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "path", ["/orgs/s0/", "/orgs/s0/members/", "/accounts/sessions/", "/no-such-page/", "/", "/accounts/2fa/"]
)
def test_page_queries_do_not_grow_with_the_number_of_organisations(path):
    _u, _o, few = _person_in([f"Org {i}" for i in range(2)], email="few@example.test")
    few_count = _queries(few, path)
    # The factory gets or creates by slug: `many` is in s0 and s1 too, and in 198 more.
    _u, _o, many = _person_in([f"Org {i}" for i in range(200)], email="many@example.test")
    many_count = _queries(many, path)
    assert many_count == few_count, (path, few_count, many_count)
