"""Switching organisation with the switcher in the top bar, with and without JavaScript; its width."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.models import Role
from tests.e2e.helpers import log_in
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

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


LONG_NAME = ("Internationale Handelsgesellschaft für Werkzeugmaschinen und Anlagenbau " * 3)[:200]


@pytest.mark.parametrize("width", [1280, 390])
def test_a_long_organisation_name_keeps_the_page_within_the_window(user_page, width):
    """A 200-character name made the switcher 1,642 px wide and the page scroll sideways: the switcher
    now cuts it short, and the sidebar's title and the heading wrap it, even without spaces."""
    user = UserFactory(email="multi@example.test")
    for i in range(200):
        name = {7: LONG_NAME, 8: "x" * 200}.get(i, f"Org {i:03d}")
        MembershipFactory(
            user=user, organization=OrganizationFactory(slug=f"s{i}", name=name), role=Role.MEMBER
        )
    page = user_page(user, viewport={"width": width, "height": 900})
    # The long names in the switcher; each also as the sidebar's title and the overview's heading.
    for path in ("/orgs/s0/", "/orgs/s7/", "/orgs/s8/"):
        page.goto(path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        switcher = page.evaluate("document.getElementById('org-switch').getBoundingClientRect().width")
        assert overflow <= 0, (
            f"{path}: page {overflow}px wider than the {width}px window (switcher {switcher}px)"
        )
        assert switcher <= min(22 * 15, 0.6 * width) + 1, switcher  # 22rem at the desktop's 15px root size
    # The sidebar shows the whole name (the switcher's cut-short one is not the only place).
    expect(page.get_by_role("navigation", name="Organisation")).to_contain_text("x" * 200)
    # The cut-short switcher still switches.
    _switcher(page).select_option("s5")
    expect(page).to_have_url(re.compile(r"/orgs/s5/$"))
