"""A gateway without a secret: it authenticates with private_key_jwt and exchanges API keys (RFC 7523 + 8693).

Over real HTTP (authlib's client-side private_key_jwt, and requests with hand-built
assertions). The exchanged token names the gateway's public key (`ckid`), so revoking that
key, or clearing the gateway's mark, stops the token at introspection and whoami at once.
"""

from __future__ import annotations

import secrets
import time

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from joserfc.jwk import ECKey

from credentials.api_keys.services import api_key_create
from tests.support.pem import pem_pair
from tokens.clients.services import (
    client_public_key_add,
    client_public_key_revoke,
    m2m_app_create,
    m2m_app_set_exchange,
)
from tokens.models import ClientPublicKey, M2MApplication
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE
from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE
from tokens.verifier import TokenVerifier

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def issuer(live_server, settings):
    # The assertions' `aud` is the token endpoint the client posts to: the live server's address.
    settings.PORTAL_ISSUER = live_server.url
    return live_server.url


@pytest.fixture
def keyed_gateway(other_organization, outsider, scopes):
    """A staff-allowed gateway of another organisation with two live EC keys (mid-rotation) and no secret."""
    first_private, first_public = pem_pair(ec.generate_private_key(ec.SECP256R1()))
    second_private, second_public = pem_pair(ec.generate_private_key(ec.SECP256R1()))
    application, secret = m2m_app_create(
        organization=other_organization,
        name="API gateway",
        owner=outsider,
        actor=outsider,
        scopes=["orders:read"],
        auth_method=M2MApplication.AuthMethod.PRIVATE_KEY_JWT,
        public_key=first_public,
    )
    assert secret is None
    client_public_key_add(application=application, jwk_or_pem=second_public, actor=outsider)
    application = m2m_app_set_exchange(application=application, allowed=True, actor=None)
    keys = {k.public_jwk["x"]: k for k in ClientPublicKey.objects.filter(application=application)}
    first_kid, second_kid = (
        keys[ECKey.import_key(pem).as_dict()["x"]].kid for pem in (first_private, second_private)
    )
    return application, {first_kid: first_private, second_kid: second_private}


@pytest.fixture
def customer_key(organization, owner, scopes):
    return api_key_create(
        organization=organization,
        name="shop",
        owner=owner,
        scopes=["orders:read", "orders:write"],
        actor=owner,
    )


def gateway_session(application: M2MApplication, private_pem: str, token_url: str) -> OAuth2Session:
    session = OAuth2Session(
        application.client_id,
        ECKey.import_key(private_pem),
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
    )
    session.register_client_auth_method(PrivateKeyJWT(token_url, alg="ES256"))
    return session


def exchange(session: OAuth2Session, token_url: str, api_key: str) -> dict:
    return session.fetch_token(
        token_url, grant_type=GRANT_TYPE, subject_token=api_key, subject_token_type=API_KEY_TOKEN_TYPE
    )


def hand_built_assertion(client_id: str, private_pem: str, aud: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60}
    return jwt.encode({**claims, "jti": secrets.token_urlsafe(16)}, private_pem, algorithm="ES256")


def introspect(session: OAuth2Session, issuer: str, token: str) -> dict:
    response = session.introspect_token(issuer + "/oauth/introspect", token=token)
    assert response.status_code == 200, response.text
    return response.json()


def whoami(issuer: str, token: str) -> requests.Response:
    with requests.Session() as session:
        return session.get(
            issuer + "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )


def test_a_keyed_gateway_exchanges_a_key_and_revoking_its_key_stops_those_tokens(
    issuer, keyed_gateway, customer_key
):
    application, private_pems = keyed_gateway
    (first_kid, first_pem), (second_kid, second_pem) = private_pems.items()
    api_key, plaintext = customer_key
    token_url = issuer + "/oauth/token"
    with (
        gateway_session(application, first_pem, token_url) as first,
        gateway_session(application, second_pem, token_url) as second,
    ):
        by_first = exchange(first, token_url, plaintext)
        by_second = exchange(second, token_url, plaintext)
        verifier = TokenVerifier(
            issuer=issuer,
            audience=settings.PORTAL_DEFAULT_AUDIENCE,
            jwks_url=issuer + "/.well-known/jwks.json",
        )
        claims = verifier.verify(by_first["access_token"]).claims
        assert claims["sub"] == f"api_key:{api_key.key_id}" and claims["org_id"] == "acme"
        assert (
            claims["act"] == {"sub": application.client_id} and claims["client_id"] == application.client_id
        )
        # Minted under the gateway's public key, not a secret: the key's thumbprint, no csid.
        assert claims["ckid"] == first_kid and "csid" not in claims
        assert verifier.verify(by_second["access_token"]).claims["ckid"] == second_kid

        # The gateway introspects (with its other key) the token it obtained; whoami knows it too.
        seen = introspect(second, issuer, by_first["access_token"])
        assert seen["active"] is True and seen["act"] == {"sub": application.client_id}
        assert whoami(issuer, by_first["access_token"]).json()["actor"] == application.client_id

        # Revoking the first key stops the tokens minted under it, at once; the other key's live on.
        client_public_key_revoke(public_key=ClientPublicKey.objects.get(kid=first_kid), actor=None)
        assert introspect(second, issuer, by_first["access_token"]) == {"active": False}
        assert whoami(issuer, by_first["access_token"]).status_code == 401
        assert introspect(second, issuer, by_second["access_token"])["active"] is True
        assert whoami(issuer, by_second["access_token"]).status_code == 200

    # The revoked key cannot exchange any more.
    with requests.Session() as session:
        refused = session.post(
            token_url,
            data={
                "grant_type": GRANT_TYPE,
                "subject_token": plaintext,
                "subject_token_type": API_KEY_TOKEN_TYPE,
                "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                "client_assertion": hand_built_assertion(application.client_id, first_pem, token_url),
            },
            timeout=10,
        )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert refused.headers["Cache-Control"] == "no-store"
    assert plaintext not in refused.text


def test_clearing_the_mark_stops_a_keyed_gateways_tokens_and_further_exchanges(
    issuer, keyed_gateway, customer_key
):
    application, private_pems = keyed_gateway
    private_pem = next(iter(private_pems.values()))
    _api_key, plaintext = customer_key
    token_url = issuer + "/oauth/token"
    with gateway_session(application, private_pem, token_url) as gateway:
        token = exchange(gateway, token_url, plaintext)["access_token"]
        assert whoami(issuer, token).status_code == 200
        m2m_app_set_exchange(application=application, allowed=False, actor=None)
        assert introspect(gateway, issuer, token) == {"active": False}
        assert whoami(issuer, token).status_code == 401
    form = {
        "grant_type": GRANT_TYPE,
        "subject_token": plaintext,
        "subject_token_type": API_KEY_TOKEN_TYPE,
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": hand_built_assertion(application.client_id, private_pem, issuer),
    }
    with requests.Session() as session:
        response = session.post(token_url, data=form, timeout=10)
        assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
        # The assertion was spent on that refusal: sending it again is a replay.
        replay = session.post(token_url, data=form, timeout=10)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"


def test_a_keyed_gateway_sends_an_assertion_or_a_secret_never_both(issuer, keyed_gateway, customer_key):
    application, private_pems = keyed_gateway
    private_pem = next(iter(private_pems.values()))
    _api_key, plaintext = customer_key
    token_url = issuer + "/oauth/token"
    with requests.Session() as session:
        response = session.post(
            token_url,
            data={
                "grant_type": GRANT_TYPE,
                "subject_token": plaintext,
                "subject_token_type": API_KEY_TOKEN_TYPE,
                "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                "client_assertion": hand_built_assertion(application.client_id, private_pem, token_url),
                "client_secret": "ips_anything",
            },
            timeout=10,
        )
    # RFC 6749 §5.2: two client authentication mechanisms at once are invalid_request.
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_keyed_gateways_exchange_introspection_and_whoami_cost_few_queries(
    client, keyed_gateway, customer_key, django_assert_max_num_queries
):
    application, private_pems = keyed_gateway
    private_pem = next(iter(private_pems.values()))
    _api_key, plaintext = customer_key
    token_url = settings.PORTAL_ISSUER + "/oauth/token"

    def exchange_in_process():
        return client.post(
            "/oauth/token",
            {
                "grant_type": GRANT_TYPE,
                "subject_token": plaintext,
                "subject_token_type": API_KEY_TOKEN_TYPE,
                "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                "client_assertion": hand_built_assertion(application.client_id, private_pem, token_url),
            },
        )

    # Warm up: the signing key (private and public), the scope catalogue, the last-used times.
    warm = exchange_in_process().json()["access_token"]
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {warm}").status_code == 200
    # The gateway's live keys with the application (client authentication); the API key is cached.
    with django_assert_max_num_queries(1):
        response = exchange_in_process()
    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    # One query says whether the token, its gateway, the gateway's key and its mark still stand.
    with django_assert_max_num_queries(1):
        assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    with django_assert_max_num_queries(2):
        introspected = client.post(
            "/oauth/introspect",
            {
                "token": token,
                "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                "client_assertion": hand_built_assertion(application.client_id, private_pem, token_url),
            },
        )
    assert introspected.json()["active"] is True
