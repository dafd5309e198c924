"""In a browser: the organisation overview's "needs attention" counts link to the inventory
filtered to exactly the counted rows, and each kind's usage sparkline has a text alternative."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.credentials.governance.attention_world import EXPECTED, build_world

pytestmark = pytest.mark.e2e


def _names(page) -> set[str]:
    return set(page.locator("table.table tbody tr td:first-child > a").all_inner_texts())


def test_the_overview_attention_counts_link_right(
    user_page, organization, other_organization, owner, member, admin_user
):
    build_world(organization, other_organization, owner, member, admin_user)
    page = user_page(owner)
    page.goto("/orgs/acme/")
    hub = page.get_by_role("region", name="Needs attention")
    expect(hub).to_be_visible()
    # Each kind's sparkline is an image with its numbers in words.
    expect(
        hub.get_by_role("img", name="API key usage: 150 requests in the last 30 days", exact=False)
    ).to_be_visible()
    for item, names in EXPECTED.items():
        page.goto("/orgs/acme/")
        link = page.locator(f'a[data-attention="{item}"]')
        expect(link.locator(".attention-count")).to_have_text(str(len(names)))
        link.click()
        expect(page.get_by_role("heading", name="Credential inventory")).to_be_visible()
        assert f"attention={item}" in page.url
        assert _names(page) == names, item
