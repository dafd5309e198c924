"""M2M applications in the browser: create, exchange the revealed secret for a token, rotate, revoke."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.a11y_world import build_world
from tests.e2e.helpers import confirming, copy_and_read_clipboard, message, record_problems, table_row
from tests.factories import make_m2m_app, scope_catalogue
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.e2e


def request_token(live_server, client_id: str, secret: str, **params) -> requests.Response:
    return requests.post(
        f"{live_server.url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", **params},
        timeout=10,
    )


def whoami(live_server, token: str) -> requests.Response:
    return requests.get(
        f"{live_server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def create_app(page: Page, name: str) -> tuple[str, str]:
    """Create an application through the form; return the client id and secret its reveal page shows."""
    page.goto("/orgs/acme/apps/")
    page.get_by_role("link", name="New application").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New M2M application")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Description").fill("Nightly invoice run")
    page.get_by_role("checkbox", name=re.compile(r"^orders:read( |$)")).check()
    page.get_by_label("Token lifetime (seconds)").fill("600")
    page.get_by_role("button", name="Create application").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Application created: {name}")
    client_id = page.locator("#client-id").inner_text().strip()
    return client_id, page.locator("#client-secret").inner_text().strip()


def secret_row(page: Page, secret: str):
    return table_row(page, f"{secret[:8]}…")


def test_create_an_application_and_use_its_secret(user_page, owner, organization, scopes, live_server):
    page = user_page(owner)
    problems = record_problems(page)
    page.goto("/orgs/acme/apps/")
    expect(page.locator(".empty-state")).to_contain_text("No M2M applications yet")

    client_id, secret = create_app(page, "Invoice worker")
    expect(page.get_by_role("alert")).to_contain_text("Copy the client secret now")
    application = M2MApplication.objects.get(name="Invoice worker")
    assert client_id == application.client_id
    assert secret.startswith(ClientSecret.objects.get(application=application).hint)
    # The ready-made command holds exactly what the boxes above show.
    expect(page.locator("#curl-command")).to_contain_text(f"-u '{client_id}:{secret}'")
    expect(page.locator("#curl-command")).to_contain_text(f"{live_server.url}/oauth/token")
    copy = page.locator("button[data-copy-target=client-secret]")
    expect(copy).to_have_accessible_name("Copy client secret")
    assert copy_and_read_clipboard(page, copy) == secret

    # In the same test, the revealed secret buys a token, and the token a whoami.
    response = request_token(live_server, client_id, secret)
    assert response.status_code == 200, response.text
    grant = response.json()
    assert grant["token_type"].lower() == "bearer"
    assert grant["expires_in"] == 600
    assert grant["scope"] == "orders:read"
    me = whoami(live_server, grant["access_token"])
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["credential_type"] == "access_token"
    assert body["organization"] == "acme"
    assert body["owner"] == owner.email
    assert body["scopes"] == ["orders:read"]

    page.get_by_role("link", name="I have stored the secret").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Invoice worker")
    expect(page.get_by_role("heading", level=1).locator(".badge")).to_have_text("Active")
    assert secret not in page.content()
    row = secret_row(page, secret)
    expect(row).to_contain_text("Active")
    # The token request shows up as the secret's last use.
    expect(row).not_to_contain_text("never")

    page.goto("/orgs/acme/apps/")
    expect(table_row(page, "Invoice worker")).to_contain_text(client_id)
    expect(table_row(page, "Invoice worker")).to_contain_text("Active")
    assert problems == []


def test_rotate_the_secret_then_revoke_it_and_the_application(
    user_page, owner, organization, scopes, live_server
):
    page = user_page(owner)
    client_id, old_secret = create_app(page, "Stock sync")
    page.get_by_role("link", name="I have stored the secret").click()

    page.get_by_label("Keep the current secret working for").select_option("1")
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New client secret: Stock sync")
    new_secret = page.locator("#client-secret").inner_text().strip()
    assert new_secret != old_secret
    expect(page.locator("#client-id")).to_have_text(client_id)

    # Inside the overlap both secrets buy tokens.
    for secret in (old_secret, new_secret):
        response = request_token(live_server, client_id, secret)
        assert response.status_code == 200, response.text
    old_token = request_token(live_server, client_id, old_secret).json()["access_token"]

    page.get_by_role("link", name="I have stored the secret").click()
    old_row, new_row = secret_row(page, old_secret), secret_row(page, new_secret)
    stops = ClientSecret.objects.get(application__client_id=client_id, hint=old_secret[:8]).expires_at
    expect(old_row).to_contain_text("Rotated")
    expect(old_row).to_contain_text(f"works until {stops:%Y-%m-%d %H:%M} UTC")
    expect(new_row).to_contain_text("Active")

    # Revoking a secret asks first; cancelling leaves it working.
    revoke_old = old_row.get_by_role("button", name=f"Revoke secret {old_secret[:8]}")
    with confirming(page, accept=False) as asked:
        revoke_old.click()
    assert asked == [f"Revoke secret {old_secret[:8]}…? Tokens minted with it stop working at once."]
    expect(old_row).to_contain_text("Rotated")
    assert request_token(live_server, client_id, old_secret).status_code == 200
    with confirming(page):
        revoke_old.click()
    expect(message(page, f"Secret {old_secret[:8]}… was revoked.")).to_be_visible()
    expect(old_row).to_contain_text("Revoked")
    expect(old_row.get_by_role("button")).to_have_count(0)
    refused = request_token(live_server, client_id, old_secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert whoami(live_server, old_token).status_code == 401
    new_token = request_token(live_server, client_id, new_secret).json()["access_token"]
    assert whoami(live_server, new_token).status_code == 200

    # Revoking the application stops the remaining secret and its tokens.
    revoke_app = page.get_by_role("button", name="Revoke application")
    with confirming(page, accept=False):
        revoke_app.click()
    expect(page.get_by_role("heading", level=1).locator(".badge")).to_have_text("Active")
    with confirming(page) as asked:
        revoke_app.click()
    assert asked == ["Revoke Stock sync? All its secrets and tokens stop working at once."]
    expect(message(page, "Stock sync was revoked.")).to_be_visible()
    expect(page.get_by_role("heading", level=1).locator(".badge")).to_have_text("Revoked")
    expect(secret_row(page, new_secret)).to_contain_text("Revoked")
    expect(page.get_by_role("button", name="Rotate secret")).to_have_count(0)
    expect(page.get_by_role("button", name="Revoke application")).to_have_count(0)
    refused = request_token(live_server, client_id, new_secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert whoami(live_server, new_token).status_code == 401

    page.goto("/orgs/acme/apps/")
    expect(table_row(page, "Stock sync")).to_contain_text("Revoked")


# A refused public key or token quota re-renders the application's page (400) at the POST-only URL
# the form was sent to (…/keys/add/, …/token-quota/), low on a long page, without JavaScript.


def _refusal_in_view(page: Page) -> bool:
    return page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)].some(el => {
            const r = el.getBoundingClientRect();
            return r.height > 0 && r.bottom > 0 && r.top < window.innerHeight;
        })""",
        ".error-summary, .form-errors, main .messages .message-error",
    )


def _refuse_public_key(page: Page, app_id: int) -> None:
    page.goto(f"/orgs/acme/apps/{app_id}/")
    page.get_by_role("textbox", name="Public key").fill("not a key")
    page.get_by_role("button", name="Register key").click()
    expect(page.locator(".error-summary")).to_have_count(1)


def _refuse_token_quota(page: Page, app_id: int) -> None:
    page.goto(f"/orgs/acme/apps/{app_id}/")
    page.get_by_label("Tokens per hour").fill("ten")
    page.get_by_role("button", name="Save the quota").click()
    expect(page.locator(".error-summary")).to_have_count(1)


def _follow_usage_link(page: Page) -> tuple[int, str]:
    link = page.get_by_role("navigation", name="Usage period").get_by_role("link", name="7d")
    with page.expect_response(lambda response: "usage=7d" in response.url) as answer:
        link.click()
    return answer.value.status, answer.value.url


#: The app page's forms a refusal re-renders at their POST-only URL: how to refuse one, on which
#: application of the world, and what the page then says at its top.
REFUSED_FORMS = {
    "public key": (lambda page, world: _refuse_public_key(page, world.keyed_app.pk), "keyed_app",
                   "The public key was not registered"),
    "token quota": (lambda page, world: _refuse_token_quota(page, world.app.pk), "app",
                    "The token quota was not saved"),
}  # fmt: skip


@pytest.mark.parametrize("form", REFUSED_FORMS)
def test_a_refused_form_is_seen_without_scrolling(user_page, owner, organization, form):
    refuse, _app, said = REFUSED_FORMS[form]
    world = build_world(organization, owner)
    page = user_page(owner, java_script_enabled=False)
    refuse(page, world)
    expect(message(page, said)).to_be_visible()
    assert _refusal_in_view(page), (
        f"the page opens at its top and nothing in view says the {form} was refused"
    )


@pytest.mark.parametrize("form", REFUSED_FORMS)
def test_usage_period_links_work_after_a_refused_form(user_page, owner, organization, form):
    refuse, app, _said = REFUSED_FORMS[form]
    world = build_world(organization, owner)
    page = user_page(owner, java_script_enabled=False)
    refuse(page, world)
    status, url = _follow_usage_link(page)
    assert status == 200, f"the 7d usage link answered {status} at {url}"
    assert url.split("?")[0].endswith(f"/orgs/acme/apps/{getattr(world, app).pk}/")
    expect(page.get_by_role("heading", name="Usage, last 7 days")).to_be_visible()


def test_without_javascript_revoking_the_application_asks_first(user_page, owner, organization):
    """Without JavaScript (no `window.confirm`), "Revoke application" leads to a confirmation page."""
    scope_catalogue()
    app, _secret = make_m2m_app(organization, owner, name="Invoice worker")
    page = user_page(owner, java_script_enabled=False)
    page.goto(f"/orgs/acme/apps/{app.pk}/")
    page.get_by_role("link", name="Revoke application").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke “Invoice worker”?")
    assert M2MApplication.objects.get(pk=app.pk).status == "active", "revoked before it was confirmed"
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(re.compile(rf"/orgs/acme/apps/{app.pk}/$"))
    assert M2MApplication.objects.get(pk=app.pk).status == "active"
    page.get_by_role("link", name="Revoke application").click()
    page.get_by_role("button", name="Revoke application").click()
    expect(message(page, "Invoice worker was revoked.")).to_be_visible()
    assert M2MApplication.objects.get(pk=app.pk).status == "revoked"
