"""A member's credential reading the requests API sees what its owner would see, and no more
(docs/governance.md, "Credential requests over the REST API"; the authority rule)."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.services import api_key_request
from tests.factories import ScopeFactory, make_api_key

pytestmark = pytest.mark.django_db
BASE = "/api/v1/orgs/acme/requests/"


def _request(organization, requester, name):
    return api_key_request(
        organization=organization,
        name=name,
        owner=requester,
        scopes=["orders:read"],
        requester=requester,
        justification=f"{name}'s reason",
    )[1]


def test_a_members_key_holding_inventory_read_lists_only_its_owners_requests(
    organization, owner, member, scopes
):
    ScopeFactory(name="inventory:read")
    others = _request(organization, owner, "owner's")
    own = _request(organization, member, "member's")
    _row, members_key = make_api_key(organization, member, name="reader", scopes=["inventory:read"])
    _row, owners_key = make_api_key(organization, owner, name="auditor", scopes=["inventory:read"])

    as_member = Client(HTTP_AUTHORIZATION=f"Bearer {members_key}")
    assert [r["id"] for r in as_member.get(BASE).json()["results"]] == [own.pk]
    assert as_member.get(f"{BASE}{others.pk}/").status_code == 404
    as_owner = Client(HTTP_AUTHORIZATION=f"Bearer {owners_key}")
    assert {r["id"] for r in as_owner.get(BASE).json()["results"]} == {own.pk, others.pk}
