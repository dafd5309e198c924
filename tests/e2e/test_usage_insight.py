"""In a browser: scripted traffic, then the credential page's chart, periods, IPs, denials and narrowing."""

from __future__ import annotations

import csv
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from credentials import usage
from credentials.api_keys import keys
from credentials.api_keys.services import api_key_create
from tests.e2e.helpers import confirming, message, record_problems
from tests.factories import ScopeFactory

pytestmark = pytest.mark.e2e


def _call(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  the test's own server
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_usage_chart_ips_denials_and_narrowing(user_page, live_server, owner, organization):
    for name in ("usage:read", "orders:read"):
        ScopeFactory(name=name)
    api_key, key = api_key_create(
        organization=organization,
        name="reporting",
        owner=owner,
        scopes=["orders:read", "usage:read"],
        actor=owner,
    )
    wrong = keys.generate(api_key.environment, key_id=api_key.key_id)[1]
    whoami = f"{live_server.url}/api/v1/whoami"
    assert [_call(whoami, key) for _ in range(3)] == [200, 200, 200]
    assert _call(f"{live_server.url}/api/v1/orgs/acme/usage/?credential={api_key.key_id}", key) == 200
    assert [_call(whoami, wrong) for _ in range(2)] == [401, 401]
    usage.rollup()

    page = user_page(owner)
    problems = record_problems(page)
    page.goto(f"/orgs/acme/api-keys/{api_key.key_id}/")
    expect(page.get_by_role("heading", name="Usage, last 24 hours")).to_be_visible()
    expect(page.locator("svg.usage-chart")).to_be_visible()
    totals = page.locator("#usage-chart-table tfoot td")
    expect(totals.nth(0)).to_have_text("4")  # valid
    expect(totals.nth(1)).to_have_text("2")  # invalid secret
    expect(page.locator("#usage-ips-table tbody tr")).to_have_count(1)
    expect(page.locator("#usage-ips-table tbody tr td").first).to_have_text("6")
    denials = page.locator("#usage-denials-table tbody tr")
    expect(denials).to_have_count(2)
    expect(denials.first).to_contain_text("invalid_secret")
    expect(denials.first).to_contain_text("/api/v1/whoami")

    page.get_by_role("link", name="7d").click()
    expect(page.get_by_role("heading", name="Usage, last 7 days")).to_be_visible()
    expect(page.locator("#usage-chart-table tfoot td").nth(0)).to_have_text("4")
    page.get_by_role("link", name="90d").click()
    expect(page.get_by_role("heading", name="Usage, last 90 days")).to_be_visible()
    expect(page.locator("#usage-chart-table tfoot td").nth(0)).to_have_text("4")
    # The period shown, as a CSV download (a plain link): a row per day, the same totals.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.startswith(f"acme-usage-{api_key.key_id}-90d-")
    with open(download.value.path(), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:6] == ["credential", "kind", "name", "start", "valid", "invalid_secret"]
    assert [sum(int(row[i]) for row in rows[1:]) for i in (4, 5)] == [4, 2]

    expect(page.locator("#usage-scopes + p")).to_have_text("orders:read")
    with confirming(page) as asked:
        page.get_by_role("button", name="Narrow to what is used").click()
    expect(message(page, "narrowed to what is used: usage:read")).to_be_visible()
    assert asked == ["Remove orders:read from this credential?"]
    expect(page.get_by_text("Every scope was needed by a request in the last 30 days.")).to_be_visible()
    api_key.refresh_from_db()
    assert api_key.scopes == ["usage:read"]
    assert problems == []
