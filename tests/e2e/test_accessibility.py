"""The dashboard in a real browser, as an owner of an organisation with one of everything.

The promise "server-rendered, accessible, works without JavaScript; a little JavaScript for
conveniences": the accessibility basics on every page, no button that needs JavaScript shown
without it, and form errors a screen-reader or keyboard user is taken to.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.e2e.a11y_checks import AUDIT, JS_ONLY_CONTROLS
from tests.e2e.a11y_world import build_world
from tests.e2e.helpers import authenticator_code, revealed_secret
from tests.isolation import org_scoped_url_names, url_kwargs

pytestmark = pytest.mark.e2e


def _create_key(page, name: str) -> str:
    page.goto("/orgs/acme/api-keys/new/")
    page.get_by_label("Name").fill(name)
    page.get_by_role("checkbox", name=re.compile(r"^orders:read ")).check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"API key created: {name}")
    return revealed_secret(page)


def test_every_owner_page_passes_the_accessibility_basics(user_page, owner, organization):
    """Every page an owner reaches with a GET, plus the one-time reveal pages, with JavaScript on."""
    world = build_world(organization, owner)
    page = user_page(owner)
    urls = [
        reverse(name, kwargs=url_kwargs(name, "acme", organization, owner))
        for name in org_scoped_url_names()
        if not name.startswith("api-") and "csv" not in name
    ]
    urls += [
        f"/orgs/acme/apps/{world.keyed_app.pk}/",
        f"/orgs/acme/api-keys/{world.pending_key.key_id}/",
        "/orgs/acme/credentials/new/?static_only=no&oauth=yes&keeps_private_key=no",
        "/accounts/sessions/",
        "/accounts/2fa/",
        "/accounts/password/change/",
        "/accounts/2fa/totp/activate/",
    ]
    problems: dict[str, list[str]] = {}
    for url in urls:
        probe = page.request.get(url, max_redirects=0)
        if probe.status != 200 or "html" not in probe.headers.get("content-type", ""):
            continue  # a POST-only action (405) or a download
        page.goto(url)
        found = page.evaluate(AUDIT)
        if found:
            problems[url] = found
    # The one-time reveal answers a POST: reach it the way a person does.
    _create_key(page, "Reveal check")
    if found := page.evaluate(AUDIT):
        problems["API key reveal"] = found
    assert problems == {}, "\n" + "\n".join(f"{url}: {p}" for url, found in problems.items() for p in found)


def test_no_button_needs_javascript(user_page, owner, organization):
    """Without JavaScript every visible button does something (here: the copy and download buttons do not)."""
    world = build_world(organization, owner)
    page = user_page(owner, java_script_enabled=False)
    inert: dict[str, list[str]] = {}

    def look(label: str) -> None:
        if found := page.evaluate(JS_ONLY_CONTROLS):
            inert[f"{label} ({page.url})"] = found

    _create_key(page, "No-JS key")
    look("API key reveal")
    page.goto(f"/orgs/acme/apps/{world.app.pk}/")
    look("M2M application")
    page.goto("/orgs/acme/members/")
    page.get_by_role("button", name="Resend and copy link for sam@acme.test").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("New invitation link")
    look("invitation link")
    page.goto("/accounts/2fa/totp/activate/")
    secret = page.locator("#authenticator-secret").inner_text().strip()
    look("authenticator set-up")
    page.get_by_label(re.compile("Authenticator code", re.I)).fill(authenticator_code(secret))
    page.get_by_role("button", name="Activate").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))
    look("recovery codes")
    assert inert == {}, "buttons that do nothing without JavaScript:\n" + "\n".join(
        f"{where}: {b}" for where, found in inert.items() for b in found
    )


def test_form_errors_take_the_user_to_them(user_page, owner, organization):
    """After a refused form, focus is on the first invalid field, or an error summary says what to fix."""
    world = build_world(organization, owner)
    page = user_page(owner, java_script_enabled=False)
    lost: list[str] = []

    def submit(url: str, fill, button: str) -> None:
        page.goto(url)
        fill()
        page.get_by_role("button", name=button).click()
        page.wait_for_load_state()
        state = page.evaluate(
            """() => {
                const invalid = document.querySelector('main [aria-invalid=true]');
                const summary = document.querySelector(
                    '.error-summary, main [role=alert], main [role=status] .message-error');
                return {
                    invalid: invalid && invalid.id,
                    focused: document.activeElement === invalid,
                    summary: !!summary,
                    active: document.activeElement.tagName + '#' + document.activeElement.id,
                };
            }"""
        )
        assert state["invalid"], f"{url}: expected the form to be refused"
        if not state["focused"] and not state["summary"]:
            lost.append(
                f"{url}: #{state['invalid']} is invalid; focus on {state['active']}; no error summary"
            )

    submit("/orgs/acme/api-keys/new/", lambda: None, "Create key")
    submit("/orgs/acme/apps/new/", lambda: None, "Create application")
    submit(
        "/orgs/acme/members/",
        lambda: page.get_by_label("Email address").fill("not-an-email"),
        "Send invitation",
    )
    submit("/orgs/acme/webhooks/new/", lambda: None, "Add endpoint")
    submit(f"/orgs/acme/api-keys/{world.api_key.key_id}/revoke/", lambda: None, "Revoke key")
    assert lost == [], "\n" + "\n".join(lost)
