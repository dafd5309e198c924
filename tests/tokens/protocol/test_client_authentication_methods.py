"""RFC 6749 §5.2: a request that authenticates the client in more than one way is `invalid_request`.

What was wrong: HTTP Basic with a body `client_secret`, a `client_secret` with a client assertion,
or Basic with a client assertion answered 401 `invalid_client` and counted as a failed
authentication toward the per-client and per-IP limits. §5.2 names "utilizes more than one
mechanism for authenticating the client" as `invalid_request` (400). It is now refused before any
credential is checked, at the token, introspection and revocation endpoints alike, and counts
toward nothing. A body `client_id` beside Basic is not a second mechanism (§2.3.1).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from urllib.parse import urlencode

import jwt
import pytest
import requests
from django.conf import settings

from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rate_clock")]

FORM = "application/x-www-form-urlencoded"
#: What each endpoint needs besides the client's credentials.
ENDPOINTS = {
    "/oauth/token": {"grant_type": "client_credentials"},
    "/oauth/introspect": {"token": "x"},
    "/oauth/revoke": {"token": "x"},
}


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _post(client, path: str, data: dict, **extra):
    """POST a form-encoded body (RFC 6749 §3.2), as every OAuth client does."""
    return client.post(path, urlencode({**ENDPOINTS[path], **data}), content_type=FORM, **extra)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def assertion(pk_app, rsa_key):
    """Return a factory of valid, fresh client assertions of `pk_app` (each with its own jti)."""

    def make() -> dict:
        now = int(time.time())
        claims = {
            "iss": pk_app.client_id,
            "sub": pk_app.client_id,
            "aud": settings.PORTAL_ISSUER,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        return {
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": jwt.encode(claims, rsa_key, algorithm="RS256"),
        }

    return make


def _two_methods(case: str, app, assertion) -> tuple[dict, dict]:
    """Return the body parameters and headers of a request using two client authentication methods."""
    basic = {"HTTP_AUTHORIZATION": _basic(app.client_id, app.client_secret)}
    if case == "basic+secret":
        return {"client_secret": app.client_secret}, basic
    if case == "secret+assertion":
        return {"client_secret": app.client_secret, **assertion()}, {}
    return assertion(), basic  # basic+assertion


def _assert_invalid_request(response):
    assert response.status_code == 400, response.content
    body = json.loads(response.content)
    assert body["error"] == "invalid_request"
    assert "one way" in body["error_description"]
    assert "WWW-Authenticate" not in response
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("case", ["basic+secret", "secret+assertion", "basic+assertion"])
def test_two_client_authentication_methods_are_invalid_request(client, app, assertion, path, case):
    data, headers = _two_methods(case, app, assertion)
    _assert_invalid_request(_post(client, path, data, **headers))


def test_two_methods_over_http_are_invalid_request(live_server, app):
    response = requests.post(
        live_server.url + "/oauth/token",
        data={"grant_type": "client_credentials", "client_secret": app.client_secret},
        headers={"Authorization": _basic(app.client_id, app.client_secret)},
        timeout=10,
    )
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_two_methods_count_as_no_failed_authentication(client, settings, app, assertion, path):
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 1
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 1
    for case in ("basic+secret", "secret+assertion", "basic+assertion"):
        data, headers = _two_methods(case, app, assertion)
        _assert_invalid_request(_post(client, path, data, **headers))
    # Neither the client id nor this address is held back: the one right way still works.
    response = _post(client, path, {}, HTTP_AUTHORIZATION=_basic(app.client_id, app.client_secret))
    assert response.status_code == 200, response.content


def test_a_body_client_id_beside_basic_is_not_a_second_method(client, app):
    basic = {"HTTP_AUTHORIZATION": _basic(app.client_id, app.client_secret)}
    assert _post(client, "/oauth/token", {"client_id": app.client_id}, **basic).status_code == 200
    # Naming another client is still a failed authentication (RFC 6749 §2.3.1), as before.
    response = _post(client, "/oauth/token", {"client_id": "someone-else"}, **basic)
    assert response.status_code == 401
    assert json.loads(response.content)["error"] == "invalid_client"


def test_parameters_sent_empty_are_no_method(client, app, assertion):
    # RFC 6749 §3.2: a parameter sent without a value is treated as omitted.
    basic = {"HTTP_AUTHORIZATION": _basic(app.client_id, app.client_secret)}
    empty = {"client_secret": "", "client_assertion": "", "client_assertion_type": ""}
    assert _post(client, "/oauth/token", empty, **basic).status_code == 200
    body = {"client_id": app.client_id, "client_secret": app.client_secret, "client_assertion": ""}
    assert _post(client, "/oauth/token", body).status_code == 200
