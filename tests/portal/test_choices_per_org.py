"""Choice lists on an organisation's pages (owners, audit actors) name only that organisation's people
and credentials, for a person who belongs to two."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, make_api_key, scope_catalogue

pytestmark = pytest.mark.django_db


def test_owner_and_actor_choices_stay_in_the_url_organisation():
    scope_catalogue()
    user = UserFactory(email="both@example.test")
    alpha = OrganizationFactory(slug="alpha", name="Alpha")
    bravo = OrganizationFactory(slug="bravo", name="Bravo")
    MembershipFactory(user=user, organization=alpha, role=Role.OWNER)
    MembershipFactory(user=user, organization=bravo, role=Role.OWNER)
    MembershipFactory(organization=alpha, role=Role.MEMBER, user=UserFactory(email="alpha.only@x.test"))
    bravo_only = MembershipFactory(
        organization=bravo, role=Role.MEMBER, user=UserFactory(email="bravo.only@x.test")
    ).user
    make_api_key(bravo, bravo_only, name="bravo-secret-project")
    client = Client()
    client.force_login(user)
    for path in (
        "/orgs/alpha/api-keys/new/",
        "/orgs/alpha/apps/new/",
        "/orgs/alpha/audit/",
        "/orgs/alpha/inventory/",
        "/orgs/alpha/api-keys/",
        "/orgs/alpha/members/",
        "/orgs/alpha/approvals/",
        "/orgs/alpha/",
    ):
        page = client.get(path).content.decode()
        assert "bravo.only@x.test" not in page and "bravo-secret-project" not in page, path
    assert "alpha.only@x.test" in client.get("/orgs/alpha/api-keys/new/").content.decode()
