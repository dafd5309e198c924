"""The API-key list's search: a term ending in `_` matches no key id by accident."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/keys/verify"


def url(org="acme", key_id=None, action=None):
    base = f"/api/v1/orgs/{org}/api-keys/"
    if key_id:
        base += f"{key_id}/"
    if action:
        base += f"{action}/"
    return base


def bearer(secret):
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_search_with_an_underscore_does_not_match_every_key(owner_client, make_key):
    make_key(name="alpha")
    make_key(name="beta")
    # "no_such" neither names a key nor an owner: nothing matches.
    assert owner_client.get(url() + "?search=no_such_").json()["count"] == 0
