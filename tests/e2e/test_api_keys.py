"""API keys in the browser: create and reveal once, copy, use, rotate with an overlap, revoke."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from credentials.api_keys import keys
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from tests.e2e.helpers import (
    assert_form_keyboard_accessible,
    confirming,
    copy_and_read_clipboard,
    message,
    record_problems,
    revealed_secret,
    tab_to,
    table_row,
)
from tests.factories import scope_catalogue
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.e2e


def whoami(live_server, key: str) -> requests.Response:
    return requests.get(
        f"{live_server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def create_key(page: Page, name: str, *, scopes: tuple[str, ...] = ("orders:read",)) -> str:
    """Create a key through the form and return the secret its reveal page shows."""
    page.goto("/orgs/acme/api-keys/")
    page.get_by_role("link", name="Create API key").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create API key")
    page.get_by_label("Name").fill(name)
    for scope in scopes:
        page.get_by_role("checkbox", name=re.compile(rf"^{re.escape(scope)} ")).check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"API key created: {name}")
    return revealed_secret(page)


def test_create_reveal_once_copy_and_use(user_page, owner, organization, scopes, live_server):
    page = user_page(owner)
    problems = record_problems(page)
    page.goto("/orgs/acme/api-keys/")
    # The empty state says what to do next.
    expect(page.get_by_role("heading", name="No API keys yet")).to_be_visible()

    secret = create_key(page, "Billing export")
    assert keys.parse(secret) is not None, secret
    expect(page.get_by_role("alert")).to_contain_text("Copy this key now")
    expect(page.locator("dl.details")).to_contain_text(owner.email)
    expect(page.locator("dl.details")).to_contain_text("orders:read")
    # (A CSS locator: the button's name changes to "Copied" on click.)
    copy = page.locator("button[data-copy-target=api-key-secret]")
    expect(copy).to_have_accessible_name("Copy")
    assert copy_and_read_clipboard(page, copy) == secret

    # Reloading the reveal page does not issue a second key nor show this one again.
    page.reload()
    expect(message(page, "cannot be shown again")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Billing export")
    expect(page.locator(".secret-box")).to_have_count(0)
    assert secret not in page.content()
    assert ApiKey.objects.filter(name="Billing export").count() == 1
    # Nor does going back: the history holds the form, never the secret.
    page.go_back()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create API key")
    assert secret not in page.content()

    # The list shows the key by its public prefix and last four characters, never in full.
    page.goto("/orgs/acme/api-keys/")
    row = table_row(page, "Billing export")
    expect(row).to_contain_text(secret[-4:])
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text(owner.email)
    assert secret not in page.content()

    response = whoami(live_server, secret)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["credential_type"] == "api_key"
    assert body["organization"] == "acme"
    assert body["owner"] == owner.email
    assert body["scopes"] == ["orders:read"]
    # The use shows up on the page: no longer "never" used.
    page.reload()
    expect(table_row(page, "Billing export").locator("td").last).not_to_have_text("never")
    assert problems == []


def test_rotate_with_an_overlap_keeps_both_keys_working(user_page, owner, organization, scopes, live_server):
    page = user_page(owner)
    old_secret = create_key(page, "Deploy bot")
    page.get_by_role("link", name="I have stored the key").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Deploy bot")
    page.get_by_role("link", name="Rotate").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Rotate “Deploy bot”")
    overlap = page.get_by_label("Keep the old key working for")
    expect(overlap).to_have_value("24")
    overlap.select_option(label="3 days")
    with confirming(page) as asked:
        page.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Key rotated: Deploy bot")
    assert asked == ["Issue a new key and schedule the old one to stop?"]
    new_secret = revealed_secret(page)
    assert new_secret != old_secret
    old, new = ApiKey.objects.get(rotated_at__isnull=False), ApiKey.objects.get(replaces__isnull=False)
    works_until = f"{old.expires_at:%Y-%m-%d %H:%M} UTC"
    expect(page.get_by_text(f"keeps working until {works_until}")).to_be_visible()
    assert old.expires_at - new.created_at > timedelta(hours=71)

    # Moving on, then pressing Back, does not bring the secret back: the reveal page is not
    # stored (no-store), so the browser offers to resubmit instead of showing it.
    page.get_by_role("link", name="I have stored the key").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Deploy bot")
    with pytest.raises(PlaywrightError, match="ERR_CACHE_MISS"):
        page.go_back()
    expect(page.locator("body")).to_contain_text("Confirm Form Resubmission")
    assert new_secret not in page.content()
    assert ApiKey.objects.count() == 2

    # The list: the old key rotated and working until the end of the overlap, the new one active.
    page.goto("/orgs/acme/api-keys/")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    old_row = rows.filter(has_text=old_secret[-4:])
    new_row = rows.filter(has_text=new_secret[-4:])
    expect(old_row).to_contain_text("Rotated")
    expect(old_row).to_contain_text(f"works until {works_until}")
    expect(new_row).to_contain_text("Active")
    expect(new_row).not_to_contain_text("Rotated")

    # The old key's page says the same and links to its successor in the rotation chain.
    old_row.get_by_role("link", name="Deploy bot").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rotated")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"works until {works_until}")
    expect(page.get_by_role("link", name="Rotate")).to_have_count(0)
    chain = page.get_by_role("region", name="Rotation chain")
    expect(chain.get_by_role("listitem")).to_have_count(2)
    chain.get_by_role("link", name=re.compile(re.escape(new_secret[-4:]))).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Active")
    expect(page.get_by_role("heading", level=1)).not_to_contain_text("Rotated")

    # Inside the overlap both keys work.
    for secret, key in ((old_secret, old), (new_secret, new)):
        response = whoami(live_server, secret)
        assert response.status_code == 200, response.text
        assert response.json()["credential_id"] == key.key_id


def test_revoke_asks_first_then_the_key_stops_working(user_page, owner, organization, scopes, live_server):
    page = user_page(owner)
    secret = create_key(page, "Old cron job")
    assert whoami(live_server, secret).status_code == 200
    page.get_by_role("link", name="I have stored the key").click()
    page.get_by_role("link", name="Revoke").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke “Old cron job”")
    page.get_by_label("Reason").fill("leaked in a build log")

    # Cancelling the confirmation changes nothing.
    with confirming(page, accept=False) as asked:
        page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke “Old cron job”")
    assert asked == ["Revoke Old cron job now? This cannot be undone."]
    assert ApiKey.objects.get(name="Old cron job").status == "active"
    assert whoami(live_server, secret).status_code == 200

    with confirming(page) as asked:
        page.get_by_role("button", name="Revoke key").click()
    expect(message(page, "“Old cron job” was revoked.")).to_be_visible()
    heading = page.get_by_role("heading", level=1)
    expect(heading.locator(".badge")).to_have_text("Revoked")
    expect(page.locator("dl.details").first).to_contain_text("leaked in a build log")
    # Nothing left to do with a revoked key.
    expect(page.get_by_role("link", name="Revoke")).to_have_count(0)
    expect(page.get_by_role("link", name="Rotate")).to_have_count(0)

    response = whoami(live_server, secret)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")

    page.goto("/orgs/acme/api-keys/?status=revoked")
    expect(table_row(page, "Old cron job")).to_contain_text("Revoked")


def test_create_a_key_with_the_keyboard_alone(user_page, owner, organization, scopes, live_server):
    page = user_page(owner)
    page.goto("/orgs/acme/api-keys/new/")
    form = page.locator("main form")
    assert_form_keyboard_accessible(form)

    page.reload()
    tab_to(page, page.get_by_label("Name"))
    page.keyboard.type("Keyboard key")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Owner")).to_be_focused()
    page.keyboard.press("Tab")
    expect(form.get_by_role("checkbox").first).to_be_focused()  # the scopes follow, in catalogue order
    scope = page.get_by_role("checkbox", name=re.compile(r"^orders:read "))
    tab_to(page, scope)
    page.keyboard.press("Space")
    expect(scope).to_be_checked()
    tab_to(page, page.get_by_label("Expires in (days)"))
    page.keyboard.type("30")
    # The runtime policy fields (IP allowlist, rate limit) follow the expiry: Tab on to the button.
    tab_to(page, page.get_by_role("button", name="Create key"))
    expect(page.get_by_role("button", name="Create key")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("API key created: Keyboard key")
    secret = revealed_secret(page)
    # The copy button and the way on are reachable from the keyboard too.
    copy = page.locator("button[data-copy-target=api-key-secret]")
    tab_to(page, copy)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.keyboard.press("Enter")
    expect(copy).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    body = whoami(live_server, secret).json()
    assert body["scopes"] == ["orders:read"]
    assert body["expires_at"] is not None


def test_without_javascript_the_cutover_revoke_asks_first(user_page, owner, organization):
    """Without JavaScript (no `window.confirm`) the cut-over's "Revoke the key" leads to a question first."""
    scope_catalogue()
    api_key, _plaintext = api_key_create(
        organization=organization, name="nightly export", owner=owner, scopes=["orders:read"], actor=owner
    )
    api_key_move_to_m2m_app(api_key=api_key, actor=owner)
    three_days_ago = timezone.now() - timedelta(days=3)  # past the quiet period: the cut-over is ready
    M2MApplication.objects.filter(moved_from_key=api_key).update(created=three_days_ago)
    ClientSecret.objects.filter(application__moved_from_key=api_key).update(created_at=three_days_ago)
    page = user_page(owner, java_script_enabled=False)
    page.goto(f"/orgs/acme/api-keys/{api_key.key_id}/")
    page.locator("#cutover").get_by_role("link", name="Revoke the key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke “nightly export” now?")
    assert ApiKey.objects.get(pk=api_key.pk).state == "active", "revoked before it was confirmed"
    page.get_by_role("button", name="Revoke the key").click()
    expect(message(page, "“nightly export” was revoked: the cut-over is complete.")).to_be_visible()
    assert ApiKey.objects.get(pk=api_key.pk).state == "revoked"
