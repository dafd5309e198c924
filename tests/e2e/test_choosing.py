"""Choosing and moving in the browser: each recommendation, live keys refused, a key moved and cut over."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from django.db.models import F
from playwright.sync_api import expect

from credentials import usage
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from credentials.models import UsageBucket
from portal.models import AuditEvent
from tests.e2e.helpers import confirming, record_problems, revealed_secret, tab_to
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.e2e

Q_STATIC = "Is it a quick script, or a third-party tool that only accepts a static key?"
Q_OAUTH = "Can the workload run an OAuth 2.0 client-credentials flow?"
Q_KEY = "Does it run in CI or Kubernetes, or anywhere it can keep a private key and sign with it?"


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


def _whoami(live_server, credential: str) -> int:
    return requests.get(
        f"{live_server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {credential}"}, timeout=10
    ).status_code


def _token(live_server, client_id: str, client_secret: str) -> str:
    grant = requests.post(
        f"{live_server.url}/oauth/token",
        auth=(client_id, client_secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert grant.status_code == 200, grant.text
    assert grant.json()["scope"] == "orders:read"
    return grant.json()["access_token"]


def _let_time_pass(api_key: ApiKey, application: M2MApplication, hours: int) -> None:
    """Move the key's recorded use and the move `hours` into the past (instead of waiting for them)."""
    ago = timedelta(hours=hours)
    # The key's last use is written just after its response; it is there by now.
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None
    UsageBucket.objects.filter(credential_id__in=[api_key.key_id, application.client_id]).update(
        start=F("start") - ago
    )
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=F("last_used_at") - ago)
    M2MApplication.objects.filter(pk=application.pk).update(created=F("created") - ago)
    ClientSecret.objects.filter(application=application).update(created_at=F("created_at") - ago)


def _bars(page, chart_id: str) -> list[str]:
    """Return the chart's bar labels ("10:00: 4 valid, 0 refused"), oldest first."""
    return page.locator(f"#{chart_id}-title").evaluate(
        "t => [...t.parentElement.querySelectorAll('g > title')].map(e => e.textContent)"
    )


def test_move_a_key_then_cut_over_until_the_key_is_revoked_after_its_quiet_period(
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
    application = M2MApplication.objects.get(client_id=client_id)
    assert application.moved_from_key_id == api_key.pk

    # The service switches to the application; until it is deployed everywhere, the key is used too.
    me = requests.get(
        f"{live_server.url}/api/v1/whoami",
        headers={"Authorization": f"Bearer {_token(live_server, client_id, client_secret)}"},
        timeout=10,
    )
    assert me.status_code == 200 and me.json()["owner"] == owner.email
    assert [_whoami(live_server, key_secret) for _ in range(4)] == [200] * 4  # the key still works
    usage.rollup()  # what `rollup_usage` (or, under `make run`, the server itself) does every minute

    page.get_by_role("link", name="I have stored the secret").click()
    expect(page.locator("#moved-from")).to_contain_text("nightly export")
    page.locator("#moved-from a").click()
    expect(page.get_by_role("heading", name=re.compile("Moved to nightly export"))).to_be_visible()
    expect(page.locator("#cutover-use")).to_contain_text(
        "Still used 4 times in the last hour / 4 in the last day."
    )
    assert any(label.endswith(": 4 valid, 0 refused") for label in _bars(page, "cutover-chart"))
    expect(page.locator("#cutover-state")).to_contain_text("Used 4 times in the last hour.")
    expect(page.get_by_role("button", name="Revoke the key")).to_be_disabled()

    # The owner picks a short quiet period; then the service stops using the key.
    page.get_by_label("Quiet period", exact=True).select_option(label="1 hour")
    page.get_by_role("button", name="Save the cut-over settings").click()
    expect(page.locator(".messages")).to_contain_text("The cut-over settings were saved.")
    expect(page.locator("#cutover-state")).to_contain_text("once unused for 1 hour")
    expect(page.get_by_role("button", name="Revoke the key")).to_be_disabled()

    # Two hours later (the recorded use is moved back, instead of waiting): no use in the last hour.
    _let_time_pass(api_key, application, hours=2)
    page.reload()
    expect(page.locator("#cutover-use")).to_contain_text(
        "Still used 0 times in the last hour / 4 in the last day."
    )
    expect(page.locator("#cutover")).to_contain_text("No recorded use in the last 1 hour.")
    day = _bars(page, "usage-chart")  # the 24-hour chart: the key's use, then nothing
    assert day[-3].endswith(": 4 valid, 0 refused"), day[-4:]
    assert day[-2:] == [
        day[-2].split(":")[0] + ":00: 0 valid, 0 refused",
        day[-1].split(":")[0] + ":00: 0 valid, 0 refused",
    ]
    expect(page.locator("#cutover-state")).to_contain_text("Not used for 1 hour: the cut-over is complete.")
    with confirming(page) as asked:
        page.get_by_role("button", name="Revoke the key").click()
    expect(page.locator(".messages")).to_contain_text("was revoked: the cut-over is complete.")
    assert asked == ["Revoke nightly export now? This cannot be undone."]
    assert _whoami(live_server, key_secret) == 401
    assert _whoami(live_server, _token(live_server, client_id, client_secret)) == 200
    event = AuditEvent.objects.get(action="credentials.api_key.revoked")
    assert event.extra["reason"].startswith(f"Cut-over complete: moved to the M2M application {client_id}")

    page.goto("/orgs/acme/inventory/")
    expect(page.locator("tr", has_text=api_key.key_id).locator(".moved")).to_contain_text(
        "Moved to nightly export"
    )
    expect(page.locator("tr", has_text=client_id).locator(".moved")).to_contain_text(
        "Moved from nightly export"
    )
    assert problems == []
