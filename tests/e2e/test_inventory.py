"""In a browser: the inventory shows both kinds, filters them, exports the same rows as CSV,
and a member's removal puts their credentials in the orphan queue (dashboard and admin)."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from credentials.api_keys.services import api_key_create, api_key_revoke
from portal.models import Membership
from tests.e2e.helpers import confirming, message, table_row
from tests.factories import ScopeFactory, UserFactory, enrol_totp
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.e2e


@pytest.fixture
def credentials(organization, owner, member):
    ScopeFactory(name="orders:read")
    api_key_create(
        organization=organization, name="nightly export", owner=owner, scopes=["orders:read"], actor=owner
    )
    old, _ = api_key_create(
        organization=organization, name="legacy script", owner=owner, scopes=[], actor=owner
    )
    api_key_revoke(api_key=old, actor=owner, reason="replaced")
    m2m_app_create(
        organization=organization, name="warehouse sync", owner=member, actor=member, scopes=["orders:read"]
    )


def _csv_rows(download) -> list[dict]:
    with open(download.path(), encoding="utf-8") as handle:
        return list(csv.DictReader(io.StringIO(handle.read())))


def _names(page) -> list[str]:
    return page.locator("table.table tbody tr td:first-child a").all_inner_texts()


def test_inventory_filters_and_csv_match_the_page(user_page, credentials, owner):
    page = user_page(owner)
    page.goto("/orgs/acme/inventory/")
    expect(page.get_by_role("heading", name="Credential inventory")).to_be_visible()
    assert sorted(_names(page)) == ["legacy script", "nightly export", "warehouse sync"]
    expect(table_row(page, "warehouse sync")).to_contain_text("M2M application")
    expect(table_row(page, "warehouse sync")).to_contain_text("token-minting")
    expect(table_row(page, "nightly export")).to_contain_text("standing")
    expect(table_row(page, "legacy script")).to_contain_text("Revoked")

    page.get_by_label("Kind").select_option("m2m_app")
    page.get_by_role("button", name="Filter").click()
    assert _names(page) == ["warehouse sync"]

    page.get_by_label("Kind").select_option("")
    page.get_by_label("Status").select_option("revoked")
    page.get_by_role("button", name="Filter").click()
    assert _names(page) == ["legacy script"]

    # The CSV carries the filters of the page, and the same rows.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    rows = _csv_rows(download)
    assert [row["name"] for row in rows] == ["legacy script"]
    assert rows[0]["status"] == "revoked" and rows[0]["kind"] == "api_key"

    page.get_by_role("link", name="Clear").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    rows = _csv_rows(download_info.value)
    assert [row["name"] for row in rows] == _names(page)


def test_removing_a_member_puts_their_credentials_in_the_orphan_queue(
    user_page, credentials, organization, owner, member
):
    page = user_page(owner)
    page.goto("/orgs/acme/members/")
    membership = Membership.objects.get(user=member, organization=organization)
    row = table_row(page, member.email)
    with confirming(page, accept=True):
        row.get_by_role("button", name="Remove").click()
    expect(message(page, f"{member.email} was removed")).to_be_visible()
    assert not Membership.objects.filter(pk=membership.pk).exists()

    page.goto("/orgs/acme/inventory/")
    page.get_by_label("Flag").select_option("orphaned")
    page.get_by_role("button", name="Filter").click()
    assert _names(page) == ["warehouse sync"]
    expect(table_row(page, "warehouse sync")).to_contain_text("Orphaned")

    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)  # staff use the admin only with a second factor
    admin = user_page(staff)
    admin.goto("/admin/tokens/m2mapplication/?queue=orphaned")
    expect(admin.locator("#result_list")).to_contain_text("warehouse sync")
    admin.goto("/admin/tokens/m2mapplication/?queue=suspended")
    expect(admin.locator("#result_list")).to_have_count(0)
