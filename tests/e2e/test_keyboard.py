"""The main forms work with the keyboard alone, and every control has a label."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    assert_form_keyboard_accessible,
    focused,
    message,
    revealed_secret,
    tab_to,
    table_row,
)
from tests.factories import PASSWORD, scope_catalogue

pytestmark = pytest.mark.e2e


def test_skip_link_is_the_first_stop(user_page, owner, organization):
    page = user_page(owner)
    page.goto("/orgs/acme/")
    page.keyboard.press("Tab")
    expect(focused(page)).to_have_text("Skip to content")
    expect(page.get_by_role("link", name="Skip to content")).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
    # The next stop is inside the page's content, past the top bar and the navigation.
    page.keyboard.press("Tab")
    assert focused(page).evaluate("el => el.closest('main') !== null")


def test_sign_in_with_the_keyboard_alone(page, owner, organization):
    page.goto("/accounts/login/")
    assert_form_keyboard_accessible(page.locator("main form"))

    page.reload()
    # The email field has the focus on arrival; Tab moves to the password, Enter submits.
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(owner.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Inc")


def test_invite_with_the_keyboard_alone(user_page, owner, organization):
    page = user_page(owner)
    page.goto("/orgs/acme/members/")
    invite_form = page.locator("form").filter(has=page.get_by_role("button", name="Send invitation"))
    assert_form_keyboard_accessible(invite_form)

    page.reload()
    tab_to(page, page.get_by_label("Email address"))
    page.keyboard.type("keys@example.test")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Role", exact=True)).to_be_focused()
    expect(page.get_by_label("Role", exact=True)).to_have_value("member")
    page.keyboard.press("ArrowUp")
    expect(page.get_by_label("Role", exact=True)).to_have_value("admin")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send invitation")).to_be_focused()
    page.keyboard.press("Enter")

    expect(message(page, "Invitation sent to keys@example.test.")).to_be_visible()
    expect(table_row(page, "keys@example.test")).to_contain_text("Admin")


def test_member_actions_are_labelled(user_page, owner, member, organization):
    page = user_page(owner)
    page.goto("/orgs/acme/members/")
    # Each row's role picker says whose role it changes.
    expect(page.get_by_label(f"Role of {member.email}")).to_have_value("member")
    expect(page.get_by_label(f"Role of {owner.email}")).to_have_value("owner")
    for form in page.locator("table form").all():
        assert_form_keyboard_accessible(form)


def test_without_javascript_the_one_time_secret_is_reached_by_keyboard_and_selected_by_a_click(
    user_page, owner, organization
):
    """Without JavaScript the copy button stays hidden: the secret itself is a named read-only text box
    that Tab reaches, and one click selects all of it (`user-select: all`), nothing around it."""
    scope_catalogue()
    page = user_page(owner, java_script_enabled=False)
    page.goto("/orgs/acme/api-keys/new/")
    page.get_by_label("Name").fill("Keyboard copy")
    page.get_by_role("checkbox", name=re.compile(r"^orders:read ")).check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("API key created: Keyboard copy")
    secret = revealed_secret(page)
    value = page.get_by_role("textbox", name="The new API key")
    expect(value).to_have_text(secret)
    expect(value).to_have_attribute("aria-readonly", "true")
    tab_to(page, value, max_presses=40)
    # Chromium has no keyboard selection inside a read-only element that is not a form field (Ctrl+A
    # selects the page); a click selects the whole secret, and only it.
    page.evaluate("() => window.getSelection().removeAllRanges()")
    value.click()
    assert page.evaluate("() => String(window.getSelection())").strip() == secret
