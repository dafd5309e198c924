"""docs/validating-tokens.md: the first verifier snippet, the plain-PyJWT snippet, the curl walk."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from tests.factories import make_api_key
from tests.tokens.conftest import basic
from tokens.verifier import TokenVerifier

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = Path(settings.BASE_DIR) / "docs" / "validating-tokens.md"


def _block(after: str) -> str:
    return re.search(re.escape(after) + r".*?```python\n(.*?)```", DOCS.read_text(), re.S).group(1)


@pytest.fixture
def issuer(live_server, settings):
    settings.PORTAL_ISSUER = live_server.url
    settings.PORTAL_DEFAULT_AUDIENCE = live_server.url + "/api"
    return live_server.url


def _token(app, **params) -> str:
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials", **params},
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def test_the_token_verifier_snippet(issuer, make_app, organization):
    app = make_app(scopes=["orders:read"])
    code = _block("## In Python, with `tokens.verifier`").replace("https://portal.example.com", issuer)
    namespace: dict = {}
    exec(compile(code, "docs/validating-tokens.md", "exec"), namespace)  # noqa: S102
    assert namespace["authenticate"]("Bearer " + _token(app)) == (app.client_id, organization.slug)
    narrow = make_app(scopes=["orders:write"], name="narrow")
    with pytest.raises(PermissionError, match="403"):
        namespace["authenticate"]("Bearer " + _token(narrow))
    with pytest.raises(PermissionError, match="401"):
        namespace["authenticate"]("Basic abc")


def test_the_plain_pyjwt_snippet(issuer, make_app, organization):
    app = make_app(scopes=["orders:read"])
    code = _block("## In Python, with plain PyJWT").replace("https://portal.example.com", issuer)
    namespace: dict = {}
    exec(compile(code, "docs/validating-tokens.md", "exec"), namespace)  # noqa: S102
    claims = namespace["verify"](_token(app))
    assert claims["client_id"] == app.client_id and claims["org_id"] == organization.slug


def test_the_token_has_the_documented_header_and_claims(issuer, make_app):
    app = make_app(scopes=["orders:read"])
    token = _token(app)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256" and header["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"iss", "sub", "client_id", "aud", "iat", "nbf", "exp", "jti", "scope", "org_id", "csid"} <= set(
        claims
    )
    assert claims["exp"] - claims["iat"] == 900


def test_the_curl_walk(issuer, make_app):
    app = make_app(scopes=["orders:read", "orders:write"])
    auth = basic(app.client_id, app.client_secret)
    c = Client()
    first = c.post("/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth)
    assert set(first.json()) == {"access_token", "token_type", "expires_in", "scope"}
    assert first.json()["expires_in"] == 900 and first.json()["token_type"] == "Bearer"
    # client_secret_post
    post = c.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret},
    )
    assert post.status_code == 200
    narrow = c.post(
        "/oauth/token", {"grant_type": "client_credentials", "scope": "orders:read"}, HTTP_AUTHORIZATION=auth
    )
    assert narrow.json()["scope"] == "orders:read"
    token = first.json()["access_token"]
    assert Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/v1/whoami").status_code == 200
    introspected = c.post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=auth)
    assert introspected.json()["active"] is True
    revoked = c.post("/oauth/revoke", {"token": token}, HTTP_AUTHORIZATION=auth)
    assert revoked.status_code == 200
    assert c.post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=auth).json() == {"active": False}
    assert c.get("/.well-known/jwks.json").status_code == 200
    assert c.get("/.well-known/oauth-authorization-server").json()["issuer"] == issuer


def test_the_documented_errors(issuer, make_app):
    app = make_app(scopes=["orders:read"])
    auth = basic(app.client_id, app.client_secret)
    c = Client()

    def err(response, status, error):
        assert response.status_code == status, response.content
        assert response["Cache-Control"] == "no-store"
        assert response.json()["error"] == error

    err(c.post("/oauth/token", {}, HTTP_AUTHORIZATION=auth), 400, "invalid_request")
    err(
        c.post(
            "/oauth/token?grant_type=client_credentials",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=auth,
        ),
        400,
        "invalid_request",
    )
    err(
        c.post(
            "/oauth/token",
            "grant_type=client_credentials&grant_type=client_credentials",
            content_type="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION=auth,
        ),
        400,
        "invalid_request",
    )
    err(
        c.post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        ),
        400,
        "invalid_request",
    )
    err(
        c.post("/oauth/token", {"grant_type": "password"}, HTTP_AUTHORIZATION=auth),
        400,
        "unsupported_grant_type",
    )
    wrong = c.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(app.client_id, "ips_" + "x" * 32),
    )
    unknown = c.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic("m2m_unknown", "ips_" + "x" * 32),
    )
    err(wrong, 401, "invalid_client")
    err(unknown, 401, "invalid_client")
    assert wrong["WWW-Authenticate"].startswith("Basic") and wrong.content == unknown.content
    err(
        c.post(
            "/oauth/token",
            {"grant_type": "client_credentials", "scope": "billing:read"},
            HTTP_AUTHORIZATION=auth,
        ),
        400,
        "invalid_scope",
    )
    err(
        c.post(
            "/oauth/token",
            {"grant_type": "client_credentials", "resource": "https://nowhere.example"},
            HTTP_AUTHORIZATION=auth,
        ),
        400,
        "invalid_target",
    )


def test_verifier_refuses_a_plain_http_jwks_url_elsewhere():

    with pytest.raises(ValueError):
        TokenVerifier(
            issuer="https://p.example",
            audience="https://p.example/api",
            jwks_url="http://p.example/.well-known/jwks.json",
        )
    TokenVerifier(
        issuer="http://127.0.0.1:8000",
        audience="http://127.0.0.1:8000/api",
        jwks_url="http://127.0.0.1:8000/.well-known/jwks.json",
    )
    TokenVerifier(
        issuer="https://p.example",
        audience="a",
        jwks_url="https://p.example/j",
        organization=["acme", "globex"],
    )


def test_jwks_max_age_as_documented(issuer):
    assert Client().get("/.well-known/jwks.json")["Cache-Control"] == "public, max-age=300"


def test_a_moved_applications_tokens_carry_the_keys_environment(issuer, organization, owner, scopes):
    """docs/validating-tokens.md:23, docs/choosing.md:121-122."""

    row, _key = make_api_key(organization, owner, scopes=["orders:read"], environment="test")
    out = io.StringIO()
    call_command("move_api_key_to_m2m_app", "--key-id", row.key_id, "--json", stdout=out)
    moved = json.loads(out.getvalue())
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(moved["client_id"], moved["client_secret"]),
    )
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["environment"] == "test"
