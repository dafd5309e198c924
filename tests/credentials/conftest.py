"""Fixtures for API key tests: the scope catalogue, keys and clients that present them."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.services import api_key_create
from tests.factories import ScopeFactory


@pytest.fixture
def scopes(db):
    return {
        name: ScopeFactory(name=name)
        for name in ("orders:read", "orders:write", "api_keys:verify", "api_keys:manage")
    }


@pytest.fixture
def make_key(organization, owner, scopes):
    """Create a key in `organization` (owned by `owner` unless told) and return `(row, plaintext)`."""

    def make(*, organization=organization, owner=owner, scopes=("orders:read",), name="job", **kwargs):
        return api_key_create(
            organization=organization, name=name, owner=owner, scopes=list(scopes), actor=owner, **kwargs
        )

    return make


@pytest.fixture
def api_key_client():
    """Return a client factory that presents `key` as a bearer credential."""

    def make(key: str, *, header: str = "bearer") -> Client:
        if header == "x-api-key":
            return Client(HTTP_X_API_KEY=key)
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    return make
