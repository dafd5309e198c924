"""Edges of RFC 8693 token exchange and whoami: narrowing a key narrows its exchanged tokens,
whoami is never cached, repeated parameters are named only when known, two audiences are
`invalid_target`."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client

from credentials.api_keys.services import api_key_create, api_key_update
from tests.tokens.conftest import basic
from tests.tokens.protocol.test_token_exchange_client_ip import exchange
from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE

pytestmark = pytest.mark.django_db

SERVICE = "https://orders.example.com"
#: RFC 6749 §5.2: error_description MUST NOT include characters outside %x20-21 / %x23-5B / %x5D-7E.
RFC6749_DESCRIPTION_CHARS = set(map(chr, [0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)]))


# --- whoami: a verdict on a credential (owner e-mail, scopes) must never be stored by a cache ------


def test_whoami_answer_is_never_stored_by_a_cache(make_customer_key):
    """X-API-Key is not `Authorization`, so a shared cache (RFC 9111 §3.5) may store the 200 and
    replay one key's owner e-mail and scopes to any caller; keys/verify marks its verdict no-store."""
    _key, plaintext = make_customer_key()
    response = Client().get("/api/v1/whoami", HTTP_X_API_KEY=plaintext)
    assert response.status_code == 200
    assert "no-store" in response.get("Cache-Control", "")


def test_whoami_answer_for_an_exchanged_token_is_never_stored_by_a_cache(gateway, make_customer_key):
    _key, plaintext = make_customer_key()
    token = exchange(gateway, plaintext).json()["access_token"]
    response = Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert "no-store" in response.get("Cache-Control", "")


# --- RFC 8693 §2.1/§2.2.2: several `audience` values are legal syntax; refusing them is invalid_target


def test_two_audience_values_are_invalid_target_not_invalid_request(gateway, make_customer_key, catalogue):
    gateway.application.allowed_audiences = [SERVICE]
    gateway.application.save()
    _key, plaintext = make_customer_key()
    response = exchange(gateway, plaintext, audience=[SERVICE, settings.PORTAL_DEFAULT_AUDIENCE])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target", response.content


# --- RFC 6749 §5.2: error_description charset; a repeated parameter's name is echoed as given -------


@pytest.mark.parametrize("name", ['a"b', "caf\u00e9", "back\\slash"])
def test_repeated_parameter_error_description_stays_in_the_rfc6749_charset(gateway, name):
    response = Client().post(
        "/oauth/token",
        {"grant_type": GRANT_TYPE, name: ["1", "2"]},
        HTTP_AUTHORIZATION=basic(gateway.client_id, gateway.client_secret),
    )
    assert response.status_code == 400
    description = json.loads(response.content)["error_description"]
    assert set(description) <= RFC6749_DESCRIPTION_CHARS, description


def test_repeated_parameter_error_never_echoes_an_api_key(gateway, make_customer_key):
    """A gateway that puts the key in the wrong place (`<key>=` twice) gets it echoed back."""
    _key, plaintext = make_customer_key()
    body = f"grant_type={GRANT_TYPE}&subject_token_type={API_KEY_TOKEN_TYPE}&{plaintext}=&{plaintext}="
    response = Client().post(
        "/oauth/token",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic(gateway.client_id, gateway.client_secret),
    )
    assert response.status_code == 400
    assert plaintext not in response.content.decode()


# --- the authority rule: a token exchanged for a key acts with no more than the key holds now -------


def test_narrowing_a_key_narrows_its_exchanged_tokens_at_once(gateway, organization, owner, scopes, make_app):
    api_key, plaintext = api_key_create(
        organization=organization,
        name="ops",
        owner=owner,
        scopes=["orders:read", "orders:write"],
        actor=owner,
    )
    token = exchange(gateway, plaintext).json()["access_token"]
    # The owner narrows the key (governance.md: "Narrowing applies at once").
    api_key_update(api_key=api_key, actor=owner, scopes=["orders:read"])
    # The key itself is narrowed at once ...
    assert Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {plaintext}").json()["scopes"] == [
        "orders:read"
    ]
    # ... and so must be the token that acts for it, at whoami and at introspection.
    me = Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == 200
    assert me.json()["scopes"] == ["orders:read"]
    resource_server = make_app(name="Orders service")
    introspected = (
        Client()
        .post(
            "/oauth/introspect",
            {"token": token},
            HTTP_AUTHORIZATION=basic(resource_server.client_id, resource_server.client_secret),
        )
        .json()
    )
    assert introspected["active"] is True and introspected["scope"] == "orders:read"
