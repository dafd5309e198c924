"""Switching organisation with the switcher in the top bar, with and without JavaScript."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.models import Role
from tests.e2e.helpers import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def two_org_user(owner, other_organization, make_member):
    """The Acme owner, also a plain member of Globex."""
    make_member(other_organization, role=Role.MEMBER, email=owner.email)
    return owner


def _switcher(page):
    return page.get_by_role("banner").get_by_label("Organisation")


def test_switch_organisation_with_javascript(page, two_org_user):
    log_in(page, two_org_user.email)
    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    expect(_switcher(page)).to_have_value("acme")

    # With JavaScript, choosing an organisation is enough: the form submits itself.
    _switcher(page).select_option(label="Globex Corp")

    expect(page).to_have_url(re.compile(r"/orgs/globex/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Globex Corp")
    expect(page.get_by_text("You are member of this organisation.")).to_be_visible()
    expect(page.get_by_role("navigation", name="Organisation")).to_contain_text("Globex Corp")
    expect(_switcher(page)).to_have_value("globex")

    # The portal remembers the organisation last used.
    page.get_by_role("link", name="Identity Portal").click()
    expect(page).to_have_url(re.compile(r"/orgs/globex/$"))


def test_switch_organisation_without_javascript(new_context, two_org_user):
    page = new_context(java_script_enabled=False).new_page()
    log_in(page, two_org_user.email)
    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))

    _switcher(page).select_option(label="Globex Corp")
    # Nothing happens until the Switch button is pressed.
    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    page.get_by_role("button", name="Switch").click()

    expect(page).to_have_url(re.compile(r"/orgs/globex/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Globex Corp")
    expect(_switcher(page)).to_have_value("globex")


def test_switch_organisation_with_the_keyboard(page, two_org_user):
    log_in(page, two_org_user.email)
    switcher = _switcher(page)
    switcher.focus()
    page.keyboard.press("ArrowDown")
    # Moving through the choices with the keyboard does not navigate on its own.
    expect(switcher).to_have_value("globex")
    page.wait_for_load_state("networkidle")
    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Switch")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/orgs/globex/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Globex Corp")
