"""Fixtures for the security tests: a scope catalogue, an M2M application and API keys."""

from __future__ import annotations

import pytest

from credentials.api_keys.services import api_key_create
from tests.factories import ScopeFactory
from tests.tokens.conftest import AppCredentials, _fresh_key_caches  # noqa: F401  (autouse fixture)
from tokens.clients.services import m2m_app_create

ALL_SCOPES = ("orders:read", "orders:write", "api_keys:verify", "api_keys:manage")


@pytest.fixture
def scopes(db):
    return {name: ScopeFactory(name=name) for name in ALL_SCOPES}


@pytest.fixture
def make_app(organization, owner, scopes):
    def make(name: str = "Billing service", **kwargs) -> AppCredentials:
        application, secret = m2m_app_create(
            organization=organization, owner=owner, actor=owner, name=name, scopes=["orders:read"], **kwargs
        )
        return AppCredentials(application, application.client_id, secret)

    return make


@pytest.fixture
def make_key(organization, owner, scopes):
    """Create a key with every scope unless told; return `(row, plaintext)`."""

    def make(name: str = "job", scopes=ALL_SCOPES):
        return api_key_create(
            organization=organization, name=name, owner=owner, scopes=list(scopes), actor=owner
        )

    return make
