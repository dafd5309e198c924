"""Signing in and out through the real login form."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import log_in, log_out
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e


def test_wrong_password_shows_the_error_and_keeps_the_email(page, owner):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password", exact=True).fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_role("alert")).to_contain_text("That email and password do not match an account")
    expect(page.get_by_label("Email")).to_have_value(owner.email)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")


def test_sign_in_lands_on_the_organisation_home(page, owner, organization):
    page.goto("/orgs/acme/members/")
    # Anonymous visitors are sent to the login form, which brings them back afterwards.
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/orgs/acme/members/"))

    log_in(page, owner.email, PASSWORD)

    expect(page).to_have_url(re.compile(r"/orgs/acme/members/$"))
    page.get_by_role("navigation", name="Organisation").get_by_role("link", name="Overview").click()
    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Inc")
    expect(page.get_by_text("You are owner of this organisation.")).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text(owner.email)

    log_out(page)
    page.goto("/orgs/acme/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_sign_in_from_the_front_door(page, member, organization):
    log_in(page, member.email)

    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Inc")
    expect(page.get_by_text("You are member of this organisation.")).to_be_visible()
    # Members do not get the audit log in the navigation.
    nav = page.get_by_role("navigation", name="Organisation")
    expect(nav.get_by_role("link", name="Members")).to_be_visible()
    expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
