"""The client snippets in docs/m2m.md (private_key_jwt, token exchange) work against a live server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings

from credentials.api_keys.services import api_key_create
from tests.factories import make_m2m_app
from tests.support.pem import pem_pair
from tokens.clients.services import m2m_app_create, m2m_app_set_exchange
from tokens.verifier import TokenVerifier

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = Path(settings.BASE_DIR) / "docs" / "m2m.md"


def _block(after: str, language: str) -> str:
    """Return the first `language` code block after the heading or sentence `after`."""
    return re.search(re.escape(after) + rf".*?```{language}\n(.*?)```", DOCS.read_text(), re.S).group(1)


@pytest.fixture
def issuer(live_server, settings):
    settings.PORTAL_ISSUER = live_server.url
    return live_server.url


def _keyed_app(organization, owner, private_key):
    private, public = pem_pair(private_key)
    application, _none = make_m2m_app(
        organization,
        owner,
        name="Docs service",
        scopes=["orders:read"],
        auth_method="private_key_jwt",
        public_key=public,
    )
    return application, private


def _claims(issuer: str, access_token: str) -> dict:
    verifier = TokenVerifier(
        issuer=issuer, audience=settings.PORTAL_DEFAULT_AUDIENCE, jwks_url=issuer + "/.well-known/jwks.json"
    )
    return verifier.verify(access_token).claims


def test_the_authlib_private_key_jwt_snippet(issuer, organization, owner, scopes):
    application, private_pem = _keyed_app(
        organization, owner, rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    code = (
        _block("### 3. Get a token from the service", "python")
        .replace("https://portal.example.com", issuer)
        .replace('"m2m_…"', repr(application.client_id))
        .replace('open("private.pem").read()', repr(private_pem))
    )
    namespace: dict = {}
    exec(compile(code, "docs/m2m.md", "exec"), namespace)  # noqa: S102 (our own documentation)
    namespace["session"].close()
    assert _claims(issuer, namespace["token"]["access_token"])["client_id"] == application.client_id


def test_the_pyjwt_and_curl_private_key_jwt_snippet(issuer, organization, owner, scopes, tmp_path):
    application, private_pem = _keyed_app(organization, owner, ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "private.pem").write_text(private_pem)
    script = (
        _block("With PyJWT and curl:", "sh")
        .replace("https://portal.example.com", issuer)
        .replace("m2m_…", application.client_id)
        .replace("python -c", f"{sys.executable} -c")
    )
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert _claims(issuer, json.loads(result.stdout)["access_token"])["client_id"] == application.client_id


@pytest.fixture
def exchange_world(issuer, organization, owner, other_organization, outsider, scopes, catalogue):
    gateway, secret = m2m_app_create(
        organization=other_organization,
        name="API gateway",
        owner=outsider,
        actor=outsider,
        scopes=["orders:read"],
        audiences=["https://orders.example.com"],
    )
    m2m_app_set_exchange(application=gateway, allowed=True, actor=None)
    _key, plaintext = api_key_create(
        organization=organization,
        name="shop",
        owner=owner,
        scopes=["orders:read", "orders:write"],
        actor=owner,
    )
    return gateway, secret, plaintext


def test_the_token_exchange_snippets(issuer, exchange_world):
    gateway, secret, api_key = exchange_world
    env = {"ISSUER": issuer, "GATEWAY_CLIENT_ID": gateway.client_id, "GATEWAY_CLIENT_SECRET": secret}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _block("From a gateway, with curl:", "sh")],
        env={**env, "CUSTOMER_API_KEY": api_key, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["scope"] == "orders:read orders:write" and body["issued_token_type"].endswith("access_token")

    namespace: dict = dict(env)
    exec(compile(_block("In Python (cache the JWT", "python"), "docs/m2m.md", "exec"), namespace)  # noqa: S102
    token = namespace["exchange"](api_key, "https://orders.example.com")
    assert token["scope"] == "orders:read orders:write"
    with pytest.raises(PermissionError):
        namespace["exchange"](
            api_key[:-1] + ("0" if api_key[-1] != "0" else "1"), "https://orders.example.com"
        )
