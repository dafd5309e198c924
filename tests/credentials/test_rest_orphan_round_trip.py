"""Sending back an orphaned credential's representation, with one change, succeeds (REST PATCH).

What was wrong: an orphaned credential (its owner left) still shows the leaver's e-mail as `owner`,
and every sent `owner` was looked up among current members, so PATCHing back what was read with
only a new name answered 400 on `owner`, on exactly the credentials the orphan queue asks admins
to tidy up (`PartialUpdateSerializer` promises a read-modify-write works).
"""

from __future__ import annotations

import json

import pytest

from credentials.api_keys.models import ApiKey
from portal.models import Membership
from portal.services.organizations import membership_remove
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("collection", ["m2m-apps", "api-keys"])
def test_sending_back_an_orphaned_credentials_representation_with_a_new_name_succeeds(
    collection, owner_client, owner, member, member_client, organization, scopes
):
    base = f"/api/v1/orgs/acme/{collection}/"
    created = member_client.post(
        base, json.dumps({"name": "Billing", "scopes": ["orders:read"]}), "application/json"
    )
    assert created.status_code == 201, created.content
    ident = created.json()["id"]
    membership_remove(membership=Membership.objects.get(user=member, organization=organization), actor=owner)
    read = owner_client.get(f"{base}{ident}/").json()
    assert read["owner"] == member.email

    sent = {**read, "name": "Billing (orphaned)"}
    response = owner_client.patch(f"{base}{ident}/", json.dumps(sent), "application/json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Billing (orphaned)"
    assert response.json()["owner"] == member.email  # not taken back: still the orphan queue's
    model = ApiKey if collection == "api-keys" else M2MApplication
    assert model.objects.get(owner=member).orphaned_at is not None

    # Naming someone else who is no member is still refused.
    refused = owner_client.patch(
        f"{base}{ident}/", json.dumps({"owner": "nobody@acme.test"}), "application/json"
    )
    assert refused.status_code == 400 and "owner" in refused.json()
