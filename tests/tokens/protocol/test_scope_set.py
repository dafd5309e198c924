"""client_credentials: a scope asked twice is granted once (a scope is a set, RFC 6749 §3.3)."""

from __future__ import annotations

import jwt
import pytest

from tests.tokens.conftest import request_token

pytestmark = pytest.mark.django_db


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_a_scope_asked_twice_is_granted_once(client, app):
    # Scope is a set of space-delimited tokens; token exchange already de-duplicates (sorted(set(...))).
    response = request_token(client, app, scope="orders:read orders:read")
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "orders:read"
    assert _claims(response.json()["access_token"])["scope"] == "orders:read"
