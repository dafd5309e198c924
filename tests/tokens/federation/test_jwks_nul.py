"""A pasted static JWKS whose members decode to a NUL character is a form error, never a 500.

The form sees `\\u0000` as six characters; `json.loads` makes it a NUL, which PostgreSQL refuses
in jsonb. A stored key keeps only the members verification reads, and one with a NUL is unusable.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from django.urls import reverse
from jwt.algorithms import ECAlgorithm

from tokens.models import FederatedIdentity

pytestmark = pytest.mark.django_db


def public_jwk(**members) -> dict:
    """A fresh P-256 public JWK for signing, with `members` added or replaced."""
    jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    return {**jwk, "use": "sig", **members}


def post_pasted_jwks(owner, app, pasted: str):
    """Post the dashboard's trust form for `app` with `pasted` as its static JWKS; return the answer."""
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    return client.post(
        reverse("org-federated-create", kwargs={"org_slug": "acme", "app_id": app.application.pk}),
        {
            "preset": "custom",
            "name": "Mesh",
            "issuer": "spiffe://example.org",
            "subject": "spiffe://example.org/ns/prod/sa/api",
            "audience": "",
            "max_token_age": 600,
            "conditions": "",
            "jwks": pasted,
        },
    )


@pytest.mark.parametrize("member", ["kid", "x-note"])
def test_a_nul_escape_in_a_pasted_jwks_is_a_form_error(owner, make_app, member):
    pasted = json.dumps({"keys": [public_jwk(**{member: "a\u0000b"})]})  # NUL written as \u0000
    assert "\x00" not in pasted and "\\u0000" in pasted
    response = post_pasted_jwks(owner, make_app(), pasted)
    assert response.status_code < 500, response.status_code
    # Either refused as a form error, or stored without the NUL: never a NUL in a stored key.
    for identity in FederatedIdentity.objects.all():
        assert "\\u0000" not in json.dumps(identity.jwks)
