"""A form submitted after the step-up window keeps its entries through re-authentication (item 4)."""

from __future__ import annotations

import re
import time
from importlib import import_module

import pytest
from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY as AUTH_RECORDS
from django.conf import settings
from playwright.sync_api import expect

from credentials.api_keys.models import ApiKey
from portal.account_security.events import LOGIN_AT
from tests.e2e.helpers import log_in, message
from tests.factories import PASSWORD, ScopeFactory

pytestmark = pytest.mark.e2e


def _make_stale(context) -> None:
    """Travel in time: make the browser's last authentication an hour old (in its server-side session)."""
    engine = import_module(settings.SESSION_ENGINE)
    key = next(c["value"] for c in context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = engine.SessionStore(session_key=key)
    old = time.time() - 3600
    session[LOGIN_AT] = old
    session[AUTH_RECORDS] = [{**record, "at": old} for record in session.get(AUTH_RECORDS, [])]
    session.save()


def test_create_api_key_entries_survive_step_up_and_are_not_resubmitted(page, owner, organization):
    ScopeFactory(name="orders:read", description="Read orders")
    ScopeFactory(name="orders:write")
    log_in(page, owner.email)
    page.goto("/orgs/acme/api-keys/new/")
    page.get_by_label("Name").fill("billing export job")
    page.get_by_role("checkbox", name=re.compile(r"^orders:write")).check()
    page.get_by_label("Environment").select_option("test")
    page.get_by_label("Expires in (days)").fill("30")

    _make_stale(page.context)  # the person was away longer than the step-up window
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm Access")
    expect(message(page, "submit the form again")).to_be_visible()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(re.compile(r"/orgs/acme/api-keys/new/\?step_up_draft="))
    expect(page.get_by_label("Name")).to_have_value("billing export job")
    expect(page.get_by_role("checkbox", name=re.compile(r"^orders:write"))).to_be_checked()
    expect(page.get_by_role("checkbox", name=re.compile(r"^orders:read"))).not_to_be_checked()
    expect(page.get_by_label("Environment")).to_have_value("test")
    expect(page.get_by_label("Expires in (days)")).to_have_value("30")
    assert not ApiKey.objects.exists()  # filled in, not submitted
    draft_url = page.url

    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("billing export job")
    key = ApiKey.objects.get()
    assert (key.name, key.environment) == ("billing export job", "test")
    assert key.scopes == ["orders:write"]

    # The draft is used once: the same URL again shows an empty form.
    page.goto(draft_url)
    expect(page.get_by_label("Name")).to_have_value("")
