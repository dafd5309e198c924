"""A federated token listing critical header extensions (RFC 7515 §4.1.11) is refused: the portal
understands none, as PyJWT refuses them for portal tokens and private_key_jwt assertions."""

from __future__ import annotations

import pytest
from django.conf import settings

from tokens.federation.services import federated_identity_create
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE

AUD = settings.PORTAL_ISSUER
SUBJECT = "repo:acme/api:ref:refs/heads/main"


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({}, 200),  # control
        ({"crit": ["urn:example:bound-to-host"], "urn:example:bound-to-host": "ci-runner-7"}, 401),
        ({"crit": ["exp"]}, 401),  # a registered claim name is never a valid crit entry (RFC 7515 §4.1.11)
        ({"crit": "not-a-list"}, 401),
    ],
    ids=["control", "unknown-extension", "registered-name", "malformed"],
)
def test_a_federated_token_with_an_unknown_critical_header_is_refused(
    client, app, oidc_issuer, headers, expected
):
    federated_identity_create(
        application=app.application, actor=None, issuer=oidc_issuer.url, subject=SUBJECT
    )
    token = oidc_issuer.token({"sub": SUBJECT, "aud": AUD}, headers=headers)
    response = client.post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": token,
        },
    )
    assert response.status_code == expected, response.content
