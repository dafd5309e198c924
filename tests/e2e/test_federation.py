"""Workload identity federation in the browser: a GitHub Actions trust from the preset, "test a token"."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.helpers import message, record_problems, table_row
from tests.factories import ScopeFactory
from tests.support.oidc_issuer import LocalIssuer
from tokens.clients.services import m2m_app_create
from tokens.models import FederatedIdentity

pytestmark = pytest.mark.e2e


def test_set_up_a_github_actions_trust_with_the_preset_and_test_tokens(
    user_page, owner, organization, live_server, settings
):
    settings.PORTAL_ISSUER = live_server.url
    settings.PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST = True
    ScopeFactory(name="deploy:write", description="Deploy")
    application, _secret = m2m_app_create(
        organization=organization, name="Deployer", owner=owner, actor=owner, scopes=["deploy:write"]
    )
    page = user_page(owner)
    problems = record_problems(page)
    with LocalIssuer() as github:
        page.goto(f"/orgs/acme/apps/{application.pk}/")
        expect(page.get_by_role("heading", name="Federated identities")).to_be_visible()
        expect(page.get_by_text("No trusts yet.")).to_be_visible()
        page.get_by_role("link", name="Add a trust").click()
        page.get_by_role("link", name="GitHub Actions").click()
        expect(page.locator("#preset-explanation")).to_contain_text("id-token: write")
        issuer_field = page.get_by_label("Issuer")
        expect(issuer_field).to_have_value("https://token.actions.githubusercontent.com")
        expect(page.get_by_label("Audience")).to_have_value(live_server.url)
        expect(page.get_by_label("Conditions")).to_have_value(
            "repository=\nref=\nenvironment=\njob_workflow_ref="
        )
        # The local issuer stands in for token.actions.githubusercontent.com.
        issuer_field.fill(github.url)
        page.get_by_label("Subject").fill("repo:acme/billing:ref:refs/heads/main")
        page.get_by_label("Conditions").fill("repository=acme/billing\nref=refs/heads/main")
        page.get_by_role("button", name="Add trust").click()
        expect(message(page, "was added")).to_be_visible()
        identity = FederatedIdentity.objects.get()
        assert identity.preset == "github_actions" and identity.max_token_age == 900
        expect(page.get_by_text(identity.public_id)).to_be_visible()

        page.get_by_role("link", name="Test a token").click()
        good = github.github_actions(audience=live_server.url, repository="acme/billing")
        page.get_by_label("External token").fill(good)
        page.get_by_role("button", name="Check the token").click()
        expect(page.get_by_role("heading", name="This token would get a portal token")).to_be_visible()
        for check in ("signature", "audience", "subject", "condition repository", "condition ref"):
            expect(page.locator(f'tr[data-check="{check}"]')).to_contain_text("Pass")
        expect(page.get_by_label("External token")).to_have_value("")  # never echoed back

        other_branch = github.github_actions(
            audience=live_server.url, repository="acme/billing", ref="refs/heads/feature"
        )
        page.get_by_label("External token").fill(other_branch)
        page.get_by_role("button", name="Check the token").click()
        expect(page.get_by_role("heading", name="This token would be refused")).to_be_visible()
        expect(page.locator('tr[data-check="subject"]')).to_contain_text("Fail")
        expect(page.locator('tr[data-check="condition ref"]')).to_contain_text("Fail")
        expect(page.locator('tr[data-check="signature"]')).to_contain_text("Pass")

        # Nothing was issued or spent by testing: the good token still gets a portal token.
        response = requests.post(
            live_server.url + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": application.client_id,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": good,
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        page.goto(f"/orgs/acme/apps/{application.pk}/")
        expect(table_row(page, identity.name)).to_contain_text("Active")
        expect(table_row(page, identity.name)).not_to_contain_text("never")
    assert problems == []
