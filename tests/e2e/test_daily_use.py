"""In a browser: the small things a new user trips on (issue 17, items 5–7)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from credentials.webhooks.services import webhook_endpoint_create
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.e2e

OVERLAPS = ["0", "1", "24", "72", "168"]


def test_revoking_without_a_reason_shows_the_field_error_before_any_confirmation(
    user_page, owner, organization
):
    key, _ = api_key_create(
        organization=organization, name="Old cron job", owner=owner, scopes=[], actor=owner
    )
    page = user_page(owner)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"/orgs/acme/api-keys/{key.key_id}/revoke/")
    page.get_by_role("button", name="Revoke key").click()
    expect(page.locator(".field-error")).to_contain_text("required")
    assert dialogs == []  # "cannot be undone?" is not asked about a form that cannot go through
    assert ApiKey.objects.get().status == "active"

    page.get_by_label("Reason").fill("leaked in a build log")
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Revoke")
    assert dialogs == ["Revoke Old cron job now? This cannot be undone."]
    assert ApiKey.objects.get().status == "active"  # dismissed: nothing happened


def test_every_rotation_offers_the_same_overlaps(user_page, owner, organization):
    key, _ = api_key_create(organization=organization, name="job", owner=owner, scopes=[], actor=owner)
    app = m2m_app_create(organization=organization, name="sync", owner=owner, actor=owner)[0]
    endpoint, _ = webhook_endpoint_create(
        organization=organization, url="https://hooks.example.com/x", event_types=["created"], actor=owner
    )
    page = user_page(owner)
    pages = {
        f"/orgs/acme/api-keys/{key.key_id}/rotate/": "Keep the old key working for",
        f"/orgs/acme/apps/{app.pk}/": "Keep the current secret working for",
        f"/orgs/acme/webhooks/{endpoint.pk}/rotate/": "Overlap",
    }
    for url, label in pages.items():
        page.goto(url)
        control = page.get_by_label(label, exact=True)
        expect(control).to_have_js_property("tagName", "SELECT")
        values = control.locator("option").evaluate_all("options => options.map(o => o.value)")
        assert values == OVERLAPS, (url, values)
        expect(control).to_have_value("24")
        expect(control.locator("option[value='168']")).to_have_text(re.compile("7 days"))


def test_small_things_on_the_pages_a_new_owner_sees_first(
    new_context, owner, member, organization, live_server
):
    from datetime import timedelta

    from django.utils import timezone

    from portal.models import AuditEvent

    key, _ = api_key_create(organization=organization, name="quarterly", owner=member, scopes=[], actor=owner)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(days=90))
    AuditEvent.objects.create(
        action="credentials.policy.updated",
        organization=organization,
        actor=owner,
        actor_label=owner.email,
        ip_address="203.0.113.77",
        extra={"api_key_max_lifetime_days": {"from": None, "to": 30}},
    )
    context = new_context(viewport={"width": 1280, "height": 800})
    from tests.e2e.helpers import log_in

    page = context.new_page()
    log_in(page, owner.email)
    # One organisation: nothing to switch to.
    expect(page.get_by_role("button", name="Switch")).to_have_count(0)

    page.goto(f"/orgs/acme/api-keys/{key.key_id}/")
    expect(page.locator("dl.details dt:text-is('Expires') + dd")).to_have_text("in 3\xa0months")

    page.goto("/orgs/acme/audit/")
    ip = page.get_by_role("cell", name="203.0.113.77")
    expect(ip).to_be_in_viewport(ratio=1)
    row = page.locator("table tbody tr").filter(has_text="203.0.113.77")
    expect(row).to_contain_text("Policy updated")
    expect(row).to_contain_text("API key max lifetime days: from none to 30")
    expect(row).not_to_contain_text("{'from'")

    page.goto("/orgs/acme/apps/")
    page.get_by_role("link", name="Create your first application").click()
    expect(page).to_have_url(re.compile(r"/orgs/acme/apps/new/$"))

    page.goto("/orgs/acme/members/")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.locator("table tbody tr").filter(has_text=member.email).get_by_role("button", name="Remove").click()
    expect(page.locator("table tbody tr").filter(has_text=member.email)).to_have_count(1)
    assert "own 1 credential" in asked[0] and "orphaned" in asked[0] and "suspended after" in asked[0]

    icon = page.request.get(f"{live_server.url}/favicon.ico")
    assert icon.status == 200 and "svg" in icon.headers["content-type"]
