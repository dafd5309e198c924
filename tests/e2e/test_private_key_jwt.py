"""private_key_jwt in the browser: create a keyless application, register a PEM key, see it by kid, use it."""

from __future__ import annotations

import secrets
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import expect

from tests.e2e.helpers import confirming, message, record_problems, table_row
from tokens.clients.public_keys import parse_public_key
from tokens.models import M2MApplication

pytestmark = pytest.mark.e2e


def _assertion(private_key, client_id: str, token_url: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now, "exp": now + 60}
    return jwt.encode({**claims, "jti": secrets.token_urlsafe(16)}, private_key, algorithm="ES256")


def test_register_a_pem_key_and_get_a_token_with_it(
    user_page, owner, organization, scopes, live_server, settings
):
    settings.PORTAL_ISSUER = live_server.url
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    kid = parse_public_key(pem)["kid"]
    page = user_page(owner)
    problems = record_problems(page)

    page.goto("/orgs/acme/apps/new/")
    page.get_by_label("Name").fill("Keyed worker")
    page.get_by_role("checkbox", name="orders:read — Read orders").check()
    page.get_by_label("Private key JWT (no secret)").check()
    page.get_by_role("button", name="Create application").click()
    expect(message(page, "It has no secret")).to_be_visible()
    expect(page.get_by_role("heading", name="Public keys")).to_be_visible()
    expect(page.get_by_text("No keys yet.")).to_be_visible()

    page.get_by_label("Public key", exact=True).fill(pem)
    page.get_by_role("button", name="Register key").click()
    expect(message(page, f"Key {kid[:12]}… (ES256) was registered.")).to_be_visible()
    row = table_row(page, kid)
    expect(row).to_contain_text("ES256")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("never")

    application = M2MApplication.objects.get(name="Keyed worker")
    token_url = live_server.url + "/oauth/token"
    response = requests.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": _assertion(private_key, application.client_id, token_url),
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    page.reload()
    expect(table_row(page, kid)).not_to_contain_text("never")

    with confirming(page):
        table_row(page, kid).get_by_role("button", name="Revoke").click()
    expect(message(page, "was revoked")).to_be_visible()
    expect(table_row(page, kid)).to_contain_text("Revoked")
    assert problems == []
