"""The portal's own verification points (whoami, introspection, revocation) with tokens an
attacker shapes or that just expired: never a 500, never active past `exp`."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest
from django.core.management import call_command

from tests.tokens.conftest import basic
from tokens.signing.issuing import access_token_claims, sign_access_token

pytestmark = pytest.mark.django_db


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _token_with_kid(kid: str) -> str:
    header = _b64({"typ": "at+jwt", "alg": "RS256", "kid": kid})
    return f"{header}.{_b64({'sub': 'x'})}.c2ln"


@pytest.mark.parametrize("kid", ["a\u0000b", "\u0000"])
def test_introspection_with_a_nul_in_the_kid_is_inactive_not_500(client, app, kid):
    """PostgreSQL refuses NUL in text parameters; the kid goes straight into a query."""
    client.raise_request_exception = False
    response = client.post(
        "/oauth/introspect",
        {"token": _token_with_kid(kid)},
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 200, response.status_code
    assert json.loads(response.content) == {"active": False}


@pytest.mark.parametrize("kid", ["a\u0000b"])
def test_whoami_with_a_nul_in_the_kid_is_401_not_500(client, kid):
    client.raise_request_exception = False
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {_token_with_kid(kid)}")
    assert response.status_code == 401, response.status_code


@pytest.mark.parametrize("kid", ["a\u0000b"])
def test_revocation_with_a_nul_in_the_kid_is_200_not_500(client, app, kid):
    client.raise_request_exception = False
    response = client.post(
        "/oauth/revoke",
        {"token": _token_with_kid(kid)},
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 200, response.status_code


def _token(app, *, expired_seconds_ago: int) -> str:
    claims = access_token_claims(
        application=app.application,
        scopes=["orders:read"],
        audience="http://127.0.0.1:8000/api",
        lifetime=300,
        secret_id=app.application.secrets.get().public_id,
    )
    now = int(time.time())
    claims["iat"] = claims["nbf"] = now - 300 - expired_seconds_ago
    claims["exp"] = now - expired_seconds_ago
    return sign_access_token(claims)


def _post(client, path, creds, token):
    return client.post(path, {"token": token}, HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret))


def test_introspection_of_a_token_that_expired_seconds_ago_is_inactive(client, app):
    """RFC 7662 §2.2: `active` is false once `exp` has passed; the portal is the issuer, it
    has no clock skew with itself. Today the verifier's 30 s leeway answers active: true with
    an `exp` in the past."""
    token = _token(app, expired_seconds_ago=10)
    body = json.loads(_post(client, "/oauth/introspect", app, token).content)
    assert body == {"active": False}, body


def test_a_token_past_its_exp_is_refused_at_once_by_the_portal(client, app):
    """The verifier's 30 s leeway is for other parties' clocks. Within it the portal accepted its
    own expired token, and a revocation-list entry (purged at `exp`) then stopped holding it."""
    token = _token(app, expired_seconds_ago=5)
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert _post(client, "/oauth/revoke", app, token).status_code == 200  # RFC 7009: always 200
    call_command("purge_revoked_tokens", stdout=io.StringIO())
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    fresh = _token(app, expired_seconds_ago=-60)  # expires in a minute
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {fresh}").status_code == 200
