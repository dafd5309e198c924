"""Inventory filters behave the same for every kind, and one bad value does not widen the page."""

from __future__ import annotations

import pytest

from tests.factories import make_api_key, make_m2m_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def both(organization, member, scopes):
    make_api_key(organization, member, name="a key", scopes=["orders:read"])
    make_m2m_app(organization, member, name="an app", scopes=["orders:read"])


def _kinds(client, organization, query):
    response = client.get(f"/api/v1/orgs/{organization.slug}/inventory/?{query}")
    assert response.status_code == 200, response.content
    return sorted(row["kind"] for row in response.json()["results"])


def test_the_scope_filter_matches_both_kinds_alike_whatever_the_case(both, owner_client, organization):
    assert _kinds(owner_client, organization, "scope=orders:read") == ["api_key", "m2m_app"]
    # Scope names are lower-case only: the same scope typed in capitals must not find the
    # API key holding it and miss the application holding it.
    upper = _kinds(owner_client, organization, "scope=ORDERS:READ")
    assert upper in (["api_key", "m2m_app"], []), upper
