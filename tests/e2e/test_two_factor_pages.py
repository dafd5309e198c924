"""In a browser: the two-factor pages look finished and sit in the portal's layout (issue 17, item 6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import authenticator_code, copy_and_read_clipboard, log_in, record_problems
from tests.e2e.test_account_security import _make_stale
from tests.factories import enrol_totp

pytestmark = pytest.mark.e2e


def test_set_up_an_authenticator_copy_the_secret_and_keep_the_recovery_codes(
    context, page, member, organization, live_server
):
    problems = record_problems(page)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    log_in(page, member.email)
    page.goto("/accounts/2fa/")
    # Inside the portal's layout: the account navigation and a panel, not a bare page.
    expect(page.get_by_role("navigation", name="Your account")).to_be_visible()
    expect(page.locator("main .account-panel")).to_have_count(1)

    page.goto("/accounts/2fa/totp/activate/")
    secret_box = page.locator("#authenticator-secret")
    secret = secret_box.inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    box = secret_box.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]
    qr = page.get_by_role("img", name=re.compile("QR code"))
    expect(qr).to_be_visible()
    assert secret not in (qr.get_attribute("alt") or "")
    copy_secret = page.locator("button[data-copy-target=authenticator-secret]")
    assert copy_and_read_clipboard(page, copy_secret) == secret

    code = authenticator_code(secret)
    page.get_by_label(re.compile("Authenticator code", re.I)).fill(code)
    page.get_by_role("button", name="Activate").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))

    codes = page.locator("#recovery-codes").input_value().strip().splitlines()
    assert len(codes) == 10
    # Read once the copy has landed (the button says "Copied"): writeText is asynchronous.
    copy_codes = page.locator("button[data-copy-target=recovery-codes]")
    expect(copy_codes).to_have_text("Copy codes")
    assert copy_and_read_clipboard(page, copy_codes).split() == codes
    with page.expect_download() as download:
        page.get_by_role("button", name="Download codes").click()
    path = download.value.path()
    assert download.value.suggested_filename == "identity-portal-recovery-codes.txt"
    assert Path(path).read_text().split() == codes
    page.get_by_label(re.compile("I have saved my recovery codes")).check()
    assert problems == []


def test_the_re_authentication_page_has_one_primary_button(user_page, owner, organization):
    enrol_totp(owner)  # with a second factor the factor is the proof: no password alternative
    page = user_page(owner)
    _make_stale(page.context)
    page.goto("/orgs/acme/api-keys/new/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm Access")
    expect(page.locator("main .auth-card")).to_have_count(1)
    expect(page.locator('main a[href^="/accounts/reauthenticate/"]')).to_have_count(0)
    expect(page.locator("main .btn-primary")).to_have_count(1)
    expect(page.locator("main .btn-primary")).to_have_text("Confirm")


def test_clicking_the_recovery_codes_selects_them_without_a_script_error(user_page, owner, organization):
    """allauth's recovery_codes.js selects the codes on a click: they are in the text box it expects."""
    page = user_page(owner)
    page.goto("/accounts/2fa/totp/activate/")
    secret = page.locator("#authenticator-secret").inner_text().strip()
    page.get_by_label(re.compile("Authenticator code", re.I)).fill(authenticator_code(secret))
    page.get_by_role("button", name="Activate").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))
    page.wait_for_load_state("load")
    problems = record_problems(page)
    page.locator("#recovery-codes").click()  # a person clicking the codes to select them
    page.wait_for_timeout(200)
    assert problems == []
    codes = page.get_by_role("textbox", name="Your recovery codes")
    selected = codes.evaluate("el => el.value.slice(el.selectionStart, el.selectionEnd)")
    assert selected.split() == codes.input_value().split() and len(selected.split()) == 10
