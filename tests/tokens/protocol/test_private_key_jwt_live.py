"""authlib's client-side private_key_jwt against a live server; tokens checked with the shipped verifier."""

from __future__ import annotations

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from joserfc.jwk import ECKey

from tests.factories import make_m2m_app
from tests.support.pem import pem_pair
from tokens.models import M2MApplication
from tokens.verifier import TokenVerifier

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def issuer(live_server, settings):
    # The assertion's `aud` is the token endpoint URL the client posts to, so the issuer is
    # the live server's address, as it would be in production.
    settings.PORTAL_ISSUER = live_server.url
    return live_server.url


def _keyed_app(organization, owner, public_pem: str) -> M2MApplication:
    application, secret = make_m2m_app(
        organization,
        owner,
        name="Keyed service",
        scopes=["orders:read"],
        auth_method="private_key_jwt",
        public_key=public_pem,
    )
    assert secret is None
    return application


def _verify(issuer: str, access_token: str) -> dict:
    verifier = TokenVerifier(
        issuer=issuer,
        audience=settings.PORTAL_DEFAULT_AUDIENCE,
        jwks_url=issuer + "/.well-known/jwks.json",
    )
    return verifier.verify(access_token).claims


def test_authlib_private_key_jwt_rs256_gets_a_token(issuer, organization, owner, scopes):
    private_pem, public_pem = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    application = _keyed_app(organization, owner, public_pem)
    token_url = issuer + "/oauth/token"
    with OAuth2Session(
        application.client_id,
        private_pem,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
    ) as session:
        session.register_client_auth_method(PrivateKeyJWT(token_url))
        token = session.fetch_token(token_url, grant_type="client_credentials")
        claims = _verify(issuer, token["access_token"])
        assert claims["client_id"] == application.client_id
        assert claims["ckid"] == application.public_keys.get().kid
        assert claims["scope"] == "orders:read"
        # A second token: authlib signs a fresh assertion (new jti) each time.
        second = session.fetch_token(token_url, grant_type="client_credentials")
        assert second["access_token"] != token["access_token"]
        # Introspection and revocation authenticate the same way.
        introspected = session.introspect_token(issuer + "/oauth/introspect", token=token["access_token"])
        assert introspected.status_code == 200 and introspected.json()["active"] is True
        revoked = session.revoke_token(issuer + "/oauth/revoke", token=token["access_token"])
        assert revoked.status_code == 200
    whoami = requests.get(
        issuer + "/api/v1/whoami", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10
    )
    assert whoami.status_code == 401
    whoami = requests.get(
        issuer + "/api/v1/whoami", headers={"Authorization": f"Bearer {second['access_token']}"}, timeout=10
    )
    assert whoami.status_code == 200 and whoami.json()["organization"] == "acme"
    application.public_keys.get().refresh_from_db()
    assert application.public_keys.get().last_used_at is not None


def test_authlib_private_key_jwt_es256(issuer, organization, owner, scopes):
    private_pem, public_pem = pem_pair(ec.generate_private_key(ec.SECP256R1()))
    application = _keyed_app(organization, owner, public_pem)
    token_url = issuer + "/oauth/token"
    with OAuth2Session(
        application.client_id, ECKey.import_key(private_pem), token_endpoint_auth_method="private_key_jwt"
    ) as session:
        session.register_client_auth_method(PrivateKeyJWT(token_url, alg="ES256"))
        token = session.fetch_token(token_url, grant_type="client_credentials")
    assert _verify(issuer, token["access_token"])["client_id"] == application.client_id


def test_authlib_with_an_unregistered_key_is_invalid_client(issuer, organization, owner, scopes):
    _private, public_pem = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    application = _keyed_app(organization, owner, public_pem)
    other_private, _public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    token_url = issuer + "/oauth/token"
    response = requests.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": PrivateKeyJWT(token_url).sign(
                type("Auth", (), {"client_id": application.client_id, "client_secret": other_private})(),
                token_url,
            ),
        },
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["Cache-Control"] == "no-store"


def test_metadata_advertises_private_key_jwt(issuer):
    metadata = requests.get(issuer + "/.well-known/oauth-authorization-server", timeout=10).json()
    for endpoint in ("token", "introspection", "revocation"):
        assert "private_key_jwt" in metadata[f"{endpoint}_endpoint_auth_methods_supported"]
        assert metadata[f"{endpoint}_endpoint_auth_signing_alg_values_supported"] == [
            "RS256",
            "PS256",
            "ES256",
            "ES384",
            "EdDSA",
        ]


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lambda: ec.generate_private_key(ec.SECP256R1()),
    ],
    ids=["RS256", "ES256"],
)
def test_the_snippet_on_the_app_page_gets_a_token(
    issuer, organization, owner, owner_client, scopes, make_key
):
    import html
    import re

    from django.urls import reverse

    private_pem, public_pem = pem_pair(make_key())
    application = _keyed_app(organization, owner, public_pem)
    page = owner_client.get(reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": application.pk}))
    snippet = html.unescape(
        re.search(r'<pre class="code"><code>(.*?)</code></pre>', page.content.decode(), re.S)[1]
    )
    assert 'open("private.pem").read()' in snippet
    namespace: dict = {}
    exec(snippet.replace('open("private.pem").read()', repr(private_pem)), namespace)  # noqa: S102
    namespace["session"].close()
    assert _verify(issuer, namespace["token"]["access_token"])["client_id"] == application.client_id
