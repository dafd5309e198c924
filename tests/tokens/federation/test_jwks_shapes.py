"""A JWKS key with a member of another type (`crv` a list or an object) is skipped as unusable:
never a 500 at the token endpoint, never an unhandled error when pasted."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from tests.support.oidc_issuer import LocalIssuer
from tokens.federation import trust as federation
from tokens.federation.services import federated_identity_create
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_issuers")]

#: A JWK whose `crv` is a JSON list (or object): `_CURVE_ALGORITHMS.get(crv)` cannot hash it.
ODD_KEYS = [
    {"kty": "EC", "crv": ["P-256"], "x": "AA", "y": "AA", "kid": "odd"},
    {"kty": "OKP", "crv": {"name": "Ed25519"}, "x": "AA", "kid": "odd"},
]


@pytest.mark.parametrize("odd", ODD_KEYS, ids=["crv-list", "crv-object"])
def test_an_issuer_jwks_with_a_non_string_crv_is_invalid_client_not_a_500(client, app, odd):
    with LocalIssuer() as issuer:
        federation.forget_issuer_keys(issuer.url)
        federated_identity_create(
            application=app.application,
            actor=None,
            issuer=issuer.url,
            subject="repo:acme/api:ref:refs/heads/main",
        )
        # The issuer publishes the odd key next to its real one.
        issuer.jwks_override = json.dumps({"keys": [odd, *issuer.jwks()["keys"]]}).encode()
        response = client.post(
            "/oauth/token",
            {
                "grant_type": "client_credentials",
                "client_id": app.client_id,
                "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                "client_assertion": issuer.github_actions(audience=settings.PORTAL_ISSUER),
            },
        )
    # The odd key is skipped like any other unusable key; the real one verifies the token.
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("odd", ODD_KEYS, ids=["crv-list", "crv-object"])
def test_a_pasted_jwks_with_a_non_string_crv_is_a_validation_error(odd):
    with pytest.raises(ValidationError):
        federation.clean_jwks(json.dumps({"keys": [odd]}))
