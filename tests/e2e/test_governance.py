"""In a browser: a member requests a key, an admin approves it, the member generates it once."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from credentials.governance.org_policy import policy_update
from tests.e2e.helpers import message, record_problems, revealed_secret, table_row
from tests.factories import ScopeFactory

pytestmark = pytest.mark.e2e


def _shot(page, name):
    # PORTAL_E2E_SHOTS=dir keeps screenshots of the governance pages for a look by eye.
    folder = os.environ.get("PORTAL_E2E_SHOTS")
    if folder:
        page.screenshot(path=f"{folder}/{name}.png", full_page=True)


def test_request_approve_generate_once(user_page, owner, member, organization):
    ScopeFactory(name="orders:read")
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)

    requester = user_page(member)
    problems = record_problems(requester)
    requester.goto("/orgs/acme/api-keys/new/")
    expect(requester.get_by_role("heading", name="Request an API key")).to_be_visible()
    requester.get_by_label("Name").fill("billing export")
    requester.get_by_label("orders:read").check()
    requester.get_by_label("Justification").fill("Nightly export to the billing system")
    requester.get_by_role("button", name="Request key").click()
    expect(message(requester, "was sent to the organisation's approvers")).to_be_visible()
    expect(requester.locator(".warning-box")).to_contain_text("Waiting for approval")
    _shot(requester, "pending-key")

    approver = user_page(owner)
    approver.goto("/orgs/acme/")
    approver.get_by_role("link", name="1 request waiting for approval").click()
    expect(approver.locator("nav.sidenav [aria-current=page]")).to_have_text("Approvals")
    row = table_row(approver, "billing export")
    expect(row).to_contain_text("Nightly export to the billing system")
    _shot(approver, "approvals")
    row.get_by_label("Comment").fill("fine")
    row.get_by_role("button", name="Approve billing export").click()
    expect(message(approver, "request approved")).to_be_visible()

    requester.reload()
    requester.get_by_role("button", name="Generate the secret").click()
    secret = revealed_secret(requester)
    assert secret.startswith("ipk_live_")
    requester.goto("/orgs/acme/inventory/")
    expect(table_row(requester, "billing export")).to_contain_text("Active")
    _shot(requester, "inventory")
    table_row(requester, "billing export").get_by_role("link", name="billing export").click()
    expect(requester.get_by_role("button", name="Generate the secret")).to_have_count(0)
    assert secret not in requester.content()
    assert problems == []
