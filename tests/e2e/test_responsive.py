"""The dashboard at phone and desktop widths: no sideways scrolling, navigation within reach."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.models import Role
from tests.e2e.helpers import assert_no_horizontal_overflow, record_problems

pytestmark = pytest.mark.e2e

WIDTHS = {"phone": 390, "desktop": 1280}


@pytest.fixture
def busy_organization(organization, owner, make_member):
    """Acme with a few more people, one of them with a long address."""
    make_member(organization, role=Role.ADMIN, email="a.rather.long.email.address@subsidiary.example.test")
    make_member(organization, role=Role.MEMBER, full_name="Dev Eloper")
    return organization


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_pages_fit_the_screen_and_navigation_works(user_page, owner, busy_organization, width):
    page = user_page(owner, viewport={"width": width, "height": 800})
    problems = record_problems(page)

    page.goto("/orgs/acme/")
    # The stylesheet is served and applied (the dark top bar), so the layout below is the real one.
    assert page.locator(".topbar").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(17, 24, 39)"
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Inc")
    assert_no_horizontal_overflow(page)
    banner = page.get_by_role("banner")
    # One organisation: no switcher (nothing to switch to, issue 17); the side navigation names it.
    expect(banner.get_by_label("Organisation")).to_have_count(0)
    expect(banner.get_by_role("button", name="Sign out")).to_be_in_viewport()

    nav = page.get_by_role("navigation", name="Organisation")
    for name in ("Overview", "Members", "Audit log"):
        expect(nav.get_by_role("link", name=name)).to_be_in_viewport()
    nav.get_by_role("link", name="Members").click()
    expect(page).to_have_url(re.compile(r"/orgs/acme/members/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Members")
    expect(nav.get_by_role("link", name="Members")).to_have_attribute("aria-current", "page")
    assert_no_horizontal_overflow(page)
    # The invite form and each row's actions are on screen, not cut off.
    expect(page.get_by_role("button", name="Send invitation")).to_be_visible()
    page.get_by_role("button", name="Send invitation").scroll_into_view_if_needed()
    expect(page.get_by_role("button", name="Send invitation")).to_be_in_viewport()
    for button in page.get_by_role("button", name="Remove").all():
        button.scroll_into_view_if_needed()
        expect(button).to_be_in_viewport(ratio=1)

    nav.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    assert_no_horizontal_overflow(page)
    assert problems == []


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_sign_in_fits_the_screen(new_context, owner, width):
    page = new_context(viewport={"width": width, "height": 800}).new_page()
    page.goto("/accounts/login/")
    assert_no_horizontal_overflow(page)
    for control in (page.get_by_label("Email"), page.get_by_label("Password", exact=True)):
        box = control.bounding_box()
        # The fields use the width there is, without running off the screen.
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
        assert box["width"] >= min(300, width - 80)
    expect(page.get_by_role("button", name="Sign in")).to_be_in_viewport()
