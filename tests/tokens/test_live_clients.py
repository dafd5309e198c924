"""Real OAuth client libraries against a live server; tokens validated with PyJWT against the served JWKS."""

from __future__ import annotations

import subprocess
import sys

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from django.conf import settings
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

from tokens.verifier import TokenVerifier

pytestmark = pytest.mark.django_db(transaction=True)


def _validate_with_pyjwt(live_server, access_token: str) -> dict:
    jwks_client = jwt.PyJWKClient(live_server.url + "/.well-known/jwks.json")
    signing_key = jwks_client.get_signing_key_from_jwt(access_token)
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"
    return jwt.decode(
        access_token,
        signing_key,
        algorithms=["RS256", "ES256"],
        audience=settings.PORTAL_DEFAULT_AUDIENCE,
        issuer=settings.PORTAL_ISSUER,
        options={"require": ["exp", "iat", "jti", "sub", "client_id", "aud", "iss"]},
    )


def test_requests_oauthlib_with_basic_auth(live_server, app):
    # Sessions are closed so no kept-alive connection holds a database session open.
    with OAuth2Session(client=BackendApplicationClient(client_id=app.client_id)) as session:
        token = session.fetch_token(
            token_url=live_server.url + "/oauth/token",
            client_id=app.client_id,
            client_secret=app.client_secret,
        )
    assert token["token_type"] == "Bearer"
    claims = _validate_with_pyjwt(live_server, token["access_token"])
    assert claims["client_id"] == claims["sub"] == app.client_id
    assert claims["scope"] == "orders:read orders:write"
    assert claims["org_id"] == "acme"


def test_requests_oauthlib_with_body_auth(live_server, app):
    with OAuth2Session(client=BackendApplicationClient(client_id=app.client_id)) as session:
        token = session.fetch_token(
            token_url=live_server.url + "/oauth/token",
            client_id=app.client_id,
            client_secret=app.client_secret,
            include_client_id=True,
            scope=["orders:read"],
        )
    claims = _validate_with_pyjwt(live_server, token["access_token"])
    assert claims["scope"] == "orders:read"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials(live_server, app, method):
    with AuthlibSession(app.client_id, app.client_secret, token_endpoint_auth_method=method) as session:
        token = session.fetch_token(live_server.url + "/oauth/token", grant_type="client_credentials")
    claims = _validate_with_pyjwt(live_server, token["access_token"])
    assert claims["client_id"] == app.client_id
    assert "refresh_token" not in token


def test_token_works_at_whoami_and_with_the_shipped_verifier(live_server, app):
    with AuthlibSession(app.client_id, app.client_secret) as session:
        access_token = session.fetch_token(live_server.url + "/oauth/token", grant_type="client_credentials")[
            "access_token"
        ]
    verifier = TokenVerifier(
        issuer=settings.PORTAL_ISSUER,
        audience=settings.PORTAL_DEFAULT_AUDIENCE,
        jwks_url=live_server.url + "/.well-known/jwks.json",
    )
    assert verifier.verify(access_token).client_id == app.client_id
    response = requests.get(
        live_server.url + "/api/v1/whoami", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )
    assert response.status_code == 200
    assert response.json()["credential_type"] == "access_token"
    assert response.json()["organization"] == "acme"


def test_wrong_secret_over_http_is_401_basic(live_server, app):
    response = requests.post(
        live_server.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(app.client_id, "ips_wrong"),
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    }
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.headers["Cache-Control"] == "no-store"


def test_verifier_module_needs_no_django():
    code = "import sys, tokens.verifier; assert 'django' not in sys.modules, 'imports django'"
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={"PATH": "/usr/bin:/bin"}, cwd=settings.BASE_DIR
    )
