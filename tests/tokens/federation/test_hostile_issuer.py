"""An external issuer that is not printable ASCII (a NUL, a lone surrogate) names no trust: the
token endpoint answers invalid_client, never a 500 from the query that looks for one."""

from __future__ import annotations

import jwt
import pytest

from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE

pytestmark = pytest.mark.django_db


def _present(client, client_id, token):
    return client.post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": token,
        },
    )


@pytest.mark.parametrize(
    "claims",
    [
        # PostgreSQL refuses a NUL in text: DataError (SQLite stores it, so these need PostgreSQL).
        pytest.param(
            {"iss": "https://issuer.example\x00", "sub": "repo:acme/api:ref:refs/heads/main"},
            marks=pytest.mark.postgres,
        ),
        pytest.param(
            {"sub": "spiffe://acme\x00.example/ns/payments"},  # a JWT-SVID without iss: its trust domain
            marks=pytest.mark.postgres,
        ),
        # A lone surrogate (`\\ud800` in the JSON) cannot be encoded for any database driver.
        {"iss": "https://issuer.example/\ud800", "sub": "repo:acme/api:ref:refs/heads/main"},
    ],
    ids=["nul-iss", "nul-spiffe-trust-domain", "surrogate-iss"],
)
def test_a_nul_in_the_external_issuer_is_invalid_client_not_a_500(client, app, claims):
    # Anyone can send this: no key, no trust, no secret is needed (HS256 with any key: it is never verified).
    token = jwt.encode({"aud": "x", "exp": 4102444800, **claims}, "k" * 32, algorithm="HS256")
    response = _present(client, app.client_id, token)
    assert response.status_code == 401, response.content
    assert response.json()["error"] == "invalid_client"
