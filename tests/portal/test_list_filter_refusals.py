"""A list page sent a filter it cannot apply lists nothing and says why (400, the error on the
field), instead of dropping that filter and listing everything under a form that looks applied.
The CSV exports and the REST inventory already refuse such a filter."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

PAGES = {
    "inventory": ("/orgs/acme/inventory/", ["status=revokd", "kind=apikey", "owner=999999", "sort=name"]),
    "api keys": ("/orgs/acme/api-keys/", ["status=revokd", "environment=prod", "owner=999999"]),
    "audit log": (
        "/orgs/acme/audit/",
        ["actor=999999", "since=yesterday", "since=2026-02-02&until=2026-01-30"],
    ),
}


@pytest.mark.parametrize(
    ("path", "query"),
    [
        pytest.param(path, query, id=f"{page}-{query}")
        for page, (path, queries) in PAGES.items()
        for query in queries
    ],
)
def test_an_invalid_filter_lists_nothing_and_names_the_field(owner_client, make_key, path, query):
    make_key(name="live-and-well")
    listed = owner_client.get(path)
    assert listed.status_code == 200
    assert b"live-and-well" in listed.content  # the page does list it unfiltered

    response = owner_client.get(f"{path}?{query}")
    body = response.content.decode()
    assert response.status_code == 400
    assert "live-and-well" not in body, "an invalid filter listed everything"
    assert "Nothing is listed until the filter is corrected" in body
    assert 'class="error-summary"' in body and 'class="field-error"' in body


@pytest.mark.parametrize("path", [path for path, _ in PAGES.values()])
def test_a_valid_filter_still_answers_200(owner_client, make_key, path):
    make_key(name="live-and-well")
    response = owner_client.get(f"{path}?page=1")
    assert response.status_code == 200
    assert b"Nothing is listed" not in response.content
