"""keys/verify and tenancy: a verifier learns about, spends and marks only its own organisation's
keys; another organisation's key is answered as unknown. An application staff mark as a
resource server (it serves every organisation's clients) verifies any organisation's keys."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.services import api_key_create
from tests.tokens.conftest import basic
from tokens.clients.services import m2m_app_create, m2m_app_set_staff_flag

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/keys/verify"
WHOAMI = "/api/v1/whoami"


@pytest.fixture
def acme_key(organization, owner, scopes):
    key, secret = api_key_create(
        organization=organization,
        name="ci deploys",
        owner=owner,
        scopes=["orders:read"],
        actor=owner,
        allowed_ips=["10.0.0.0/8"],
        rate_limit={"requests": 3, "per_seconds": 3600},
    )
    return key, secret


@pytest.fixture
def globex_verifier(other_organization, outsider, scopes):
    _v, secret = api_key_create(
        organization=other_organization,
        name="verifier",
        owner=outsider,
        scopes=["api_keys:verify"],
        actor=outsider,
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR="198.51.100.7")


def test_another_organisations_verifier_learns_nothing_about_a_key(acme_key, globex_verifier, owner):
    _key, secret = acme_key
    # The thief of an allowlisted key cannot use it from outside its network...
    assert (
        Client(HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR="198.51.100.7").get(WHOAMI).status_code
        == 403
    )
    # ...but a verifier of any other organisation (self-service scope) gets it confirmed, with
    # Acme's owner e-mail, key name and scopes: another organisation's data.
    body = globex_verifier.post(VERIFY, {"key": secret}, content_type="application/json").json()
    assert owner.email not in str(body), body
    assert body.get("valid") is not True, body


def test_another_organisations_verifier_cannot_fake_a_keys_last_use(acme_key, globex_verifier):
    key, secret = acme_key
    globex_verifier.post(VERIFY, {"key": secret, "client_ip": "10.9.9.9"}, content_type="application/json")
    key.refresh_from_db()
    # Globex reported an address inside Acme's allowlist; the portal recorded it as Acme's key's last use.
    assert key.last_used_ip != "10.9.9.9"


@pytest.mark.usefixtures("rate_clock")
def test_another_organisations_verifier_cannot_spend_a_keys_budget(acme_key, globex_verifier):
    _key, secret = acme_key
    for _ in range(3):
        globex_verifier.post(VERIFY, {"key": secret}, content_type="application/json")
    # Acme's own machine, on its own network, is now refused by its own limit.
    response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR="10.1.1.1").get(WHOAMI)
    assert response.status_code == 200, (response.status_code, response.content)


def test_a_resource_server_verifies_any_organisations_keys(acme_key, other_organization, outsider, scopes):
    application, app_secret = m2m_app_create(
        organization=other_organization,
        name="platform gateway",
        owner=outsider,
        scopes=["api_keys:verify"],
        actor=outsider,
    )

    def token_of() -> str:
        mint = {"grant_type": "client_credentials"}
        credentials = basic(application.client_id, app_secret)
        return Client().post("/oauth/token", mint, HTTP_AUTHORIZATION=credentials).json()["access_token"]

    _key, secret = acme_key
    untrusted = Client(HTTP_AUTHORIZATION=f"Bearer {token_of()}")
    assert untrusted.post(VERIFY, {"key": secret}, content_type="application/json").json() == {
        "valid": False,
        "code": "not_found",
    }
    m2m_app_set_staff_flag(application=application, flag="is_resource_server", value=True, actor=None)
    trusted = Client(HTTP_AUTHORIZATION=f"Bearer {token_of()}")
    body = trusted.post(
        VERIFY, {"key": secret, "client_ip": "10.1.2.3"}, content_type="application/json"
    ).json()
    assert body["valid"] is True and body["organization"] == "acme"
