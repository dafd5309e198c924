"""In a browser: expiry is told truthfully while a key waits for approval and after it is revoked
(issue 17, item 3), and the create form offers 7/30/60/90-day presets and a date (the extra)."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_revoke
from credentials.governance.org_policy import policy_update
from tests.e2e.helpers import message, record_problems, table_row
from tests.factories import ScopeFactory

pytestmark = pytest.mark.e2e


def _details(page, term: str):
    return page.locator(f"dl.details dt:text-is('{term}') + dd")


def test_a_key_waiting_for_approval_tells_its_lifetime_under_a_policy_cap(
    user_page, owner, member, organization
):
    ScopeFactory(name="orders:read")
    policy_update(
        organization=organization, actor=owner, approve_new_api_keys=True, api_key_max_lifetime_days=30
    )

    requester = user_page(member)
    problems = record_problems(requester)
    requester.goto("/orgs/acme/api-keys/new/")
    field = requester.get_by_label("Expires in (days)")
    expect(requester.locator("#id_expires_in_days_helptext")).to_contain_text("At most 30 days")
    expect(requester.locator("#id_expires_in_days_helptext")).not_to_contain_text("does not expire")
    presets = requester.get_by_role("group", name="Expiry presets")
    expect(presets.get_by_role("button", name="60 days")).to_be_disabled()
    expect(presets.get_by_role("button", name="90 days")).to_be_disabled()
    presets.get_by_role("button", name="7 days").click()
    expect(field).to_have_value("7")
    presets.get_by_role("button", name="Custom date…").click()
    presets.get_by_label("Expires on (date)").fill((date.today() + timedelta(days=14)).isoformat())
    expect(field).to_have_value("14")

    requester.get_by_label("Name").fill("billing export")
    requester.get_by_label("orders:read").check()
    requester.get_by_label("Justification").fill("Nightly export")
    requester.get_by_role("button", name="Request key").click()
    expect(message(requester, "was sent to the organisation's approvers")).to_be_visible()
    expect(_details(requester, "Expires")).to_have_text("14 days after its secret is generated")

    requester.goto("/orgs/acme/api-keys/")
    expires_cell = table_row(requester, "billing export").locator("td[data-label=Expires]")
    expect(expires_cell).to_have_text("set when its secret is generated")

    approver = user_page(owner)
    approver.goto("/orgs/acme/approvals/")
    expect(table_row(approver, "billing export")).to_contain_text("14 days")
    assert ApiKey.objects.get().expires_at is None  # nothing runs down while it waits
    assert problems == []


def test_a_revoked_key_neither_expires_nor_waits_for_review(user_page, owner, organization):
    key, _ = api_key_create(organization=organization, name="old job", owner=owner, scopes=[], actor=owner)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=key.created_at + timedelta(days=1))
    api_key_revoke(api_key=ApiKey.objects.get(pk=key.pk), actor=owner, reason="replaced")

    page = user_page(owner)
    page.goto(f"/orgs/acme/api-keys/{key.key_id}/")
    expect(_details(page, "Expires")).to_have_text("— (revoked)")
    expect(_details(page, "Review due")).to_have_text("— (revoked)")
    expect(page.locator("main")).not_to_contain_text(re.compile(r"Expires in|in \d+ (hours?|months?)"))
