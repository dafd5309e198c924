"""The inventory CSV with a filter it cannot apply answers 400, as the REST inventory and the
audit CSV do, instead of exporting every credential."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("query", ["status=revokd", "kind=apikey", "owner=999999", "q=" + "a" * 200])
def test_an_invalid_filter_is_refused_not_widened_to_everything(owner_client, make_key, query):
    make_key(name="live and well")
    api = owner_client.get(f"/api/v1/orgs/acme/inventory/?{query}")
    assert api.status_code == 400  # the API refuses it
    response = owner_client.get(f"/orgs/acme/inventory/export.csv?{query}")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"live and well" not in body, "an invalid filter exported every credential"
    assert response.status_code == 400
