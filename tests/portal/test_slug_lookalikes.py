"""Organisation URLs match the slug exactly: for a key of `acme`, every REST org endpoint under
`ACME`, `Acme` or a neighbouring slug (`acme-corp`, `acm`, `acme2`) answers 404 (or 405), as for a person."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import Role
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    ScopeFactory,
    UserFactory,
    make_api_key,
    scope_catalogue,
)
from tests.isolation import org_scoped_url_names, url_kwargs

pytestmark = pytest.mark.django_db

ALL = [
    "api_keys:manage",
    "m2m_apps:manage",
    "inventory:read",
    "usage:read",
    "webhooks:manage",
    "requests:decide",
    "orders:read",
]


def test_a_key_reaches_only_its_own_slug_exactly():
    scope_catalogue()
    for name in ALL:
        ScopeFactory(name=name)
    acme = OrganizationFactory(slug="acme", name="Acme")
    owner = MembershipFactory(organization=acme, role=Role.OWNER, user=UserFactory(email="o@acme.test")).user
    neighbours = {}
    for slug in ("acme-corp", "acm", "acme2"):
        org = OrganizationFactory(slug=slug, name=f"N {slug}")
        neighbours[slug] = (org, MembershipFactory(organization=org, role=Role.OWNER).user)
    _row, plaintext = make_api_key(acme, owner, scopes=ALL)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    # The session of the same owner, for comparison: case variants are 404 for a person too.
    person = Client()
    person.force_login(owner)
    names = [n for n in org_scoped_url_names() if n.startswith("api-")]
    assert names
    for name in names:
        own = reverse(name, kwargs=url_kwargs(name, "acme", acme, owner))
        assert client.get(own).status_code in (200, 400, 403, 405), own
        for variant in ("ACME", "Acme"):
            url = reverse(name, kwargs=url_kwargs(name, variant, acme, owner))
            for c in (client, person):
                for method in ("get", "post"):
                    status = getattr(c, method)(url).status_code
                    assert status in (404, 405), (method, url, status)
        for slug, (org, their_owner) in neighbours.items():
            url = reverse(name, kwargs=url_kwargs(name, slug, org, their_owner))
            for method in ("get", "post", "patch", "delete"):
                status = getattr(client, method)(url).status_code
                assert status in (404, 405), (method, url, status)
