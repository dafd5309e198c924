"""Passkeys through Chromium's virtual authenticator, and ending another browser's session."""

from __future__ import annotations

import re
import time
from importlib import import_module

import pytest
from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY as AUTH_RECORDS
from allauth.mfa.models import Authenticator
from django.conf import settings
from playwright.sync_api import expect

from portal.account_security.events import LOGIN_AT
from tests.e2e.a11y_checks import JS_ONLY_CONTROLS
from tests.e2e.helpers import confirming, log_in, log_out, message, record_problems
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

#: What a browser without JavaScript is told where the passkey buttons would be.
NO_JS_PASSKEYS = "Passkeys need JavaScript; use your password and authenticator code."


def _virtual_authenticator(context, page) -> None:
    """Give the browser a platform authenticator with resident keys and user verification."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )


def test_register_a_passkey_then_sign_in_with_it(context, page, member, organization):
    _virtual_authenticator(context, page)
    problems = record_problems(page)
    log_in(page, member.email)

    page.get_by_role("banner").get_by_role("link", name="Two-factor").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/$"))
    page.goto("/accounts/2fa/webauthn/add/")
    page.get_by_label("Name").fill("Laptop")
    page.get_by_label("Passwordless").check()
    page.get_by_role("button", name="Add").click()
    # The first second factor comes with ten recovery codes, shown once.
    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))
    assert Authenticator.objects.filter(user=member, type="webauthn").count() == 1

    log_out(page)
    page.get_by_role("button", name="Use a passkey instead").click()
    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    expect(page.get_by_role("banner")).to_contain_text(member.email)
    assert problems == []


def test_ending_a_session_signs_that_browser_out(new_context, member, organization):
    laptop_context, phone_context = new_context(), new_context()
    laptop, phone = laptop_context.new_page(), phone_context.new_page()
    log_in(laptop, member.email)
    log_in(phone, member.email)

    laptop.get_by_role("banner").get_by_role("link", name="Sessions").click()
    expect(laptop.get_by_role("table").get_by_role("row")).to_have_count(3)  # header + two sessions
    expect(laptop.get_by_role("cell", name="This browser", exact=True)).to_have_count(1)
    with confirming(laptop) as asked:
        laptop.get_by_role("button", name="Sign Out Other Sessions").click()
    assert "every other session" in asked[0]
    expect(message(laptop, "Signed out")).to_be_visible()

    phone.goto("/orgs/acme/members/")
    expect(phone).to_have_url(re.compile(r"/accounts/login/\?next=/orgs/acme/members/"))
    laptop.goto("/orgs/acme/members/")
    expect(laptop.get_by_role("heading", level=1)).to_have_text("Members")


def _make_stale(context) -> None:
    """Travel in time: make the browser's last authentication an hour old (in its server-side session)."""
    engine = import_module(settings.SESSION_ENGINE)
    key = next(c["value"] for c in context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = engine.SessionStore(session_key=key)
    old = time.time() - 3600
    session[LOGIN_AT] = old
    session[AUTH_RECORDS] = [{**record, "at": old} for record in session.get(AUTH_RECORDS, [])]
    session.save()


def test_a_stale_session_confirms_the_password_before_creating_a_key(page, owner, organization):
    log_in(page, owner.email)
    page.goto("/orgs/acme/api-keys/")
    _make_stale(page.context)

    page.get_by_role("link", name="Create API key").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm Access")
    expect(message(page, "Confirm it is you")).to_be_visible()
    page.get_by_label("Password", exact=True).fill("not-the-password")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm Access")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(re.compile(r"/orgs/acme/api-keys/new/$"))
    expect(page.get_by_label("Name")).to_be_visible()


def test_without_javascript_adding_a_passkey_shows_no_inert_button(user_page, owner, organization):
    """allauth's "Add" needs its script: without JavaScript it is hidden and the page says why."""
    page = user_page(owner, java_script_enabled=False)
    page.goto("/accounts/2fa/webauthn/add/")
    assert page.evaluate(JS_ONLY_CONTROLS) == [], "a visible 'Add' that does nothing without JavaScript"
    expect(page.locator("main noscript p")).to_have_text(NO_JS_PASSKEYS)
    expect(page.locator("main noscript p")).to_be_visible()


def test_without_javascript_sign_in_offers_no_passkey_button(new_context, owner, organization):
    """Without JavaScript "Use a passkey instead" posted an empty credential ("This field is required.")."""
    page = new_context(java_script_enabled=False).new_page()
    page.goto("/accounts/login/")
    expect(page.get_by_role("button", name="Use a passkey instead")).to_be_hidden()
    expect(page.locator("noscript p")).to_have_text([NO_JS_PASSKEYS])  # beside the button, said once
    expect(page.locator("main noscript p")).to_be_visible()
    # With JavaScript the button is there, and the line is not.
    page = new_context().new_page()
    page.goto("/accounts/login/")
    expect(page.get_by_role("button", name="Use a passkey instead")).to_be_visible()
    expect(page.locator("noscript p")).to_have_count(0)
