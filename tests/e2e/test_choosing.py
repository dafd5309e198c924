"""Choosing and moving in the browser: each recommendation, live keys not allowed, a key moved."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from tests.e2e.helpers import confirming, record_problems, revealed_secret, tab_to
from tests.factories import ScopeFactory
from tokens.models import M2MApplication
from tokens.signing import keys

pytestmark = pytest.mark.e2e

Q_STATIC = "Is it a quick script, or a third-party tool that only accepts a static key?"
Q_OAUTH = "Can the workload run an OAuth 2.0 client-credentials flow?"
Q_KEY = "Does it run in CI or Kubernetes, or anywhere it can keep a private key and sign with it?"


@pytest.fixture(autouse=True)
def _fresh_signing_key_caches():
    keys.forget_loaded_key()
    keys.forget_public_keys()
    yield
    keys.forget_loaded_key()
    keys.forget_public_keys()


@pytest.fixture
def scopes(transactional_db):
    return [ScopeFactory(name="orders:read", description="Read orders"), ScopeFactory(name="orders:write")]


@pytest.mark.parametrize(
    ("answers", "recommended", "create_heading"),
    [
        ({Q_STATIC: "Yes"}, "An API key", "Create API key"),
        ({Q_STATIC: "No", Q_OAUTH: "Yes", Q_KEY: "No"}, "An M2M application with a client secret", None),
        ({Q_STATIC: "No", Q_OAUTH: "Yes", Q_KEY: "Yes"}, "An M2M application with private_key_jwt", None),
    ],
)
def test_the_chooser_recommends_and_links_to_each_kind(
    user_page, owner, organization, answers, recommended, create_heading
):
    page = user_page(owner)
    problems = record_problems(page)
    page.goto("/orgs/acme/api-keys/")
    page.get_by_role("link", name="New credential: help me choose").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New credential")
    # By keyboard alone: Tab reaches each group (its first radio), Space picks "Yes", an arrow "No".
    for question in (Q_STATIC, Q_OAUTH, Q_KEY):
        if question not in answers:
            continue
        group = page.get_by_role("group", name=re.compile(re.escape(question)))
        tab_to(page, group.get_by_label("Yes"))
        page.keyboard.press("Space" if answers[question] == "Yes" else "ArrowDown")
        expect(group.get_by_label(answers[question])).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Recommend a credential"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Recommended: {recommended}")).to_be_visible()
    # The answers survive: the result page is the form again.
    for question, choice in answers.items():
        expect(
            page.get_by_role("group", name=re.compile(re.escape(question))).get_by_label(choice)
        ).to_be_checked()
    page.locator("#create-recommended").click()
    if create_heading:
        expect(page.get_by_role("heading", level=1)).to_have_text(create_heading)
    else:
        expect(page.get_by_role("heading", level=1)).to_have_text("New M2M application")
        method = "Private key JWT (no secret)" if "private_key_jwt" in recommended else "Client secret"
        expect(page.get_by_label(method, exact=True)).to_be_checked()
    assert problems == []


def test_live_api_keys_not_allowed_while_test_keys_still_work(
    user_page, owner, organization, scopes, live_server
):
    page = user_page(owner)
    page.goto("/orgs/acme/policy/")
    page.get_by_role("group", name="New live API keys").get_by_label(
        "Not allowed (M2M applications only)"
    ).check()
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator(".messages")).to_contain_text("The credential policy was saved.")

    page.goto("/orgs/acme/api-keys/new/")
    expect(page.locator("#kind-policy")).to_contain_text("are not allowed")
    page.get_by_label("Name").fill("live export")
    page.get_by_role("checkbox", name=re.compile(r"^orders:read ")).check()
    page.get_by_label("Environment").select_option("live")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator(".form-errors")).to_contain_text(
        "Live API keys are not allowed by your organisation's credential policy: "
        "create an M2M application instead."
    )
    assert not ApiKey.objects.exists()

    page.get_by_label("Environment").select_option("test")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("API key created: live export")
    secret = revealed_secret(page)
    assert secret.startswith("ipk_test_")
    me = requests.get(
        f"{live_server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )
    assert me.status_code == 200 and me.json()["credential_type"] == "api_key"


def test_move_a_key_then_its_application_token_works_and_both_pages_link(
    user_page, owner, organization, scopes, live_server
):
    api_key, key_secret = api_key_create(
        organization=organization, name="nightly export", owner=owner, scopes=["orders:read"], actor=owner
    )
    page = user_page(owner)
    problems = record_problems(page)
    page.goto(f"/orgs/acme/api-keys/{api_key.key_id}/")
    page.get_by_role("link", name="Move to an M2M application").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Move “nightly export” to an M2M application")
    expect(page.locator("main")).to_contain_text("keeps working")
    page.get_by_role("button", name="Create the application and show its secret").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Application created: nightly export")
    client_id = page.locator("#client-id").inner_text().strip()
    client_secret = page.locator("#client-secret").inner_text().strip()
    expect(page.locator("#moved-from")).to_contain_text("keeps working until you revoke it")

    grant = requests.post(
        f"{live_server.url}/oauth/token",
        auth=(client_id, client_secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert grant.status_code == 200, grant.text
    assert grant.json()["scope"] == "orders:read"
    me = requests.get(
        f"{live_server.url}/api/v1/whoami",
        headers={"Authorization": f"Bearer {grant.json()['access_token']}"},
        timeout=10,
    )
    assert me.status_code == 200 and me.json()["owner"] == owner.email
    key_me = requests.get(
        f"{live_server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {key_secret}"}, timeout=10
    )
    assert key_me.status_code == 200  # the key still works until revoked

    page.get_by_role("link", name="I have stored the secret").click()
    expect(page.locator("#moved-from")).to_contain_text("nightly export")
    page.locator("#moved-from a").click()
    expect(page.get_by_role("heading", name=re.compile("Moved to nightly export"))).to_be_visible()
    with confirming(page):
        page.get_by_role("button", name="Revoke the key now").click()
    expect(page.locator(".messages")).to_contain_text("was revoked")
    key_gone = requests.get(
        f"{live_server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {key_secret}"}, timeout=10
    )
    assert key_gone.status_code == 401
    application = M2MApplication.objects.get(client_id=client_id)
    assert application.moved_from_key_id == api_key.pk
    assert problems == []
