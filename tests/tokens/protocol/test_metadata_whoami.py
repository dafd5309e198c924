"""Server metadata (RFC 8414), the JWKS document (RFC 7517/7638) and /api/v1/whoami with access tokens."""

from __future__ import annotations

import json

import jwt
import pytest
from django.conf import settings
from jwcrypto.jwk import JWK

from tests.tokens.conftest import basic
from tokens.signing.issuing import access_token_claims, sign_access_token

pytestmark = pytest.mark.django_db


def test_metadata_document(client, scopes, app, token_for):
    response = client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    body = json.loads(response.content)
    iss = jwt.decode(token_for(app), options={"verify_signature": False})["iss"]
    assert body["issuer"] == iss == settings.PORTAL_ISSUER
    assert body["token_endpoint"] == settings.PORTAL_ISSUER + "/oauth/token"
    assert body["jwks_uri"] == settings.PORTAL_ISSUER + "/.well-known/jwks.json"
    assert body["introspection_endpoint"] == settings.PORTAL_ISSUER + "/oauth/introspect"
    assert body["revocation_endpoint"] == settings.PORTAL_ISSUER + "/oauth/revoke"
    assert body["grant_types_supported"] == [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert set(body["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    }
    # Every scope of the catalogue, sorted by name.
    catalogue = "api_keys:manage api_keys:verify billing:read inventory:read orders:read orders:write"
    assert body["scopes_supported"] == sorted(scopes) == catalogue.split()


def test_jwks_document_and_thumbprint_kid(client):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("public, max-age=")
    (key,) = json.loads(response.content)["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    # kid is the RFC 7638 thumbprint, computed here by an independent implementation.
    assert key["kid"] == JWK(**{k: key[k] for k in ("kty", "n", "e")}).thumbprint()


def test_jwt_header_and_claims(client, app, token_for):
    token = token_for(app, scope="orders:read")
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256" and header["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {
        "iss",
        "sub",
        "client_id",
        "aud",
        "iat",
        "nbf",
        "exp",
        "jti",
        "scope",
        "org_id",
        "csid",
    }
    assert claims["sub"] == claims["client_id"] == app.client_id
    assert claims["aud"] == settings.PORTAL_DEFAULT_AUDIENCE
    assert claims["org_id"] == "acme"
    assert claims["csid"] == app.application.secrets.get().public_id
    assert claims["exp"] - claims["iat"] == 900
    assert token_for(app) != token  # jti is random per token
    assert claims["jti"] != jwt.decode(token_for(app), options={"verify_signature": False})["jti"]
    assert app.client_secret not in token and "owner@acme.test" not in json.dumps(claims)


def test_whoami_with_access_token(client, app, token_for):
    response = client.get(
        "/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token_for(app, scope='orders:read')}"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["credential_type"] == "access_token"
    assert body["organization"] == "acme"
    assert body["scopes"] == ["orders:read"]
    assert body["owner"] == "owner@acme.test"
    assert body["client_id"] == app.client_id


def test_whoami_is_scoped_to_the_tokens_organisation(client, app, other_app, token_for):
    assert (
        client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token_for(other_app)}").json()[
            "organization"
        ]
        == "globex"
    )
    assert (
        client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token_for(app)}").json()["organization"]
        == "acme"
    )


def test_whoami_refuses_token_for_another_audience(client, make_app, token_for, catalogue):
    creds = make_app(audiences=["https://orders.example.com"])
    token = token_for(creds, resource="https://orders.example.com")
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_whoami_refuses_a_token_claiming_another_organisation(client, app):
    claims = access_token_claims(
        application=app.application,
        scopes=["orders:read"],
        audience=settings.PORTAL_DEFAULT_AUDIENCE,
        lifetime=300,
        secret_id=app.application.secrets.get().public_id,
    )
    claims["org_id"] = "globex"  # signed by the portal, yet inconsistent with the application
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {sign_access_token(claims)}")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "value", ["Bearer eyJ.eyJ.x", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Bearer"]
)
def test_whoami_refuses_unusable_tokens(client, value):
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=value)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_whoami_hot_path_query_count(client, app, token_for, django_assert_max_num_queries):
    token = token_for(app)
    client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")  # warms the key cache
    with django_assert_max_num_queries(2):
        assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_basic_credentials_are_not_accepted_at_whoami(client, app):
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret))
    assert response.status_code == 401


def test_metadata_omits_scopes_supported_while_the_catalogue_is_empty(client):
    """RFC 8414 §3.2: a claim with zero elements is omitted. Before staff create any scope, an
    empty list would tell a client the server supports no scope at all."""
    body = json.loads(client.get("/.well-known/oauth-authorization-server").content)
    assert "scopes_supported" not in body
    assert body["response_types_supported"] == []  # REQUIRED by §2: kept (see metadata.py)
