"""A list page sent a filter it cannot apply lists nothing and says why (400, the error on the
field), instead of dropping that filter and listing everything under a form that looks applied.
The CSV exports and the REST inventory already refuse such a filter."""

from __future__ import annotations

import re

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


def _exports(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]*export\.csv[^"]*)"', html)]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/orgs/acme/inventory/", "status=revokd&q=billing"),
        ("/orgs/acme/audit/", "actor=999999&action=credentials"),
    ],
)
def test_a_refused_filter_offers_no_export_that_can_only_fail(owner_client, path, query):
    # The export refuses the same filter (a plain-text 400, a failed download): no link to it.
    valid = owner_client.get(f"{path}?q=billing" if "inventory" in path else f"{path}?action=credentials")
    assert valid.status_code == 200 and _exports(valid.content.decode()), "a valid filter offers its export"

    page = owner_client.get(f"{path}?{query}")
    assert page.status_code == 400
    exports = _exports(page.content.decode())
    failing = [h for h in exports if owner_client.get(h).status_code != 200]
    assert failing == [], f"the refused page links to exports that answer an error: {failing}"
