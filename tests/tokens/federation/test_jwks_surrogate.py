"""Text PostgreSQL cannot store (a lone surrogate) is refused where a trust is made, never a 500.

What was wrong: a pasted JWKS whose `kid` is the escape `\\ud800` (six ASCII characters, which
`json.loads` turns into a lone surrogate) passed `parse_jwks`, which only screened out a NUL
(tests/tokens/federation/test_jwks_nul.py); jsonb refused the save, so the form answered 500 and
`add_federated_identity --jwks-file` crashed. Such a key is now skipped like one with a NUL, and a
key set left with none is refused with a message saying why.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.tokens.federation.test_jwks_nul import post_pasted_jwks, public_jwk
from tokens.federation import trust
from tokens.models import FederatedIdentity

pytestmark = pytest.mark.django_db

SURROGATE_KID = "key-\ud800"


def _pasted(*jwks: dict) -> str:
    pasted = json.dumps({"keys": list(jwks)})  # json.dumps writes the surrogate as the escape \ud800
    assert pasted.isascii() and "\\ud800" in pasted
    return pasted


def test_a_key_set_whose_only_key_has_a_lone_surrogate_is_refused_and_says_why():
    with pytest.raises(ValidationError) as refused:
        trust.clean_jwks(_pasted(public_jwk(kid=SURROGATE_KID)))
    assert "lone surrogate" in refused.value.message_dict["jwks"][0]


def test_a_key_with_a_lone_surrogate_is_skipped_and_the_others_kept():
    kept = trust.clean_jwks(_pasted(public_jwk(kid=SURROGATE_KID), public_jwk(kid="good")))
    assert [jwk["kid"] for jwk in kept["keys"]] == ["good"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lone_surrogate_escape_in_a_pasted_jwks_kid_is_a_form_error(require_postgres, owner, make_app):
    response = post_pasted_jwks(owner, make_app(), _pasted(public_jwk(kid=SURROGATE_KID)))
    assert response.status_code == 400, response.status_code
    assert "lone surrogate" in response.context["form"].errors["jwks"][0]
    assert not FederatedIdentity.objects.exists()


def _add(app, *extra: str) -> None:
    call_command(
        "add_federated_identity",
        "--client-id",
        app.client_id,
        "--issuer",
        "spiffe://example.org",
        "--subject",
        "spiffe://example.org/ns/prod/sa/api",
        *extra,
        stdout=StringIO(),
    )


def test_the_command_refuses_a_jwks_file_whose_only_key_has_a_lone_surrogate(app, tmp_path):
    path = tmp_path / "bundle.json"
    path.write_text(_pasted(public_jwk(kid=SURROGATE_KID)))
    with pytest.raises(CommandError, match="lone surrogate"):
        _add(app, "--jwks-file", str(path))
    assert not FederatedIdentity.objects.exists()
