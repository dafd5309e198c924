"""Fixtures for the tokens room: scopes, applications with their one-time secrets, token helpers."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest

from tests.factories import ResourceServerFactory, ScopeFactory
from tokens.clients.services import m2m_app_create
from tokens.models import M2MApplication
from tokens.signing import keys


@dataclass
class AppCredentials:
    application: M2MApplication
    client_id: str
    client_secret: str


def basic(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


@pytest.fixture(autouse=True)
def _fresh_key_caches():
    keys.forget_loaded_key()
    keys.forget_public_keys()
    yield
    keys.forget_loaded_key()
    keys.forget_public_keys()


@pytest.fixture
def scopes(db):
    return [
        ScopeFactory(name="orders:read"),
        ScopeFactory(name="orders:write"),
        ScopeFactory(name="billing:read"),
    ]


#: Audiences the tokens tests give applications; staff registered them (open to every organisation).
CATALOGUE = (
    "https://orders.example.com",
    "https://orders.example.com/api",
    "https://billing.example.com",
    "https://reports.example.com",
)


@pytest.fixture
def catalogue(db):
    """Register the tests' audiences in the resource-server catalogue; return them by identifier."""
    return {identifier: ResourceServerFactory(identifier=identifier) for identifier in CATALOGUE}


@pytest.fixture
def make_app(organization, owner, scopes):
    default_organization = organization

    def make(organization=None, app_owner=None, **kwargs) -> AppCredentials:
        kwargs.setdefault("name", "Billing service")
        kwargs.setdefault("scopes", ["orders:read", "orders:write"])
        application, secret = m2m_app_create(
            organization=organization or default_organization,
            owner=app_owner or owner,
            actor=app_owner or owner,
            **kwargs,
        )
        return AppCredentials(application, application.client_id, secret)

    return make


@pytest.fixture
def app(make_app) -> AppCredentials:
    return make_app()


@pytest.fixture
def other_app(make_app, other_organization, outsider) -> AppCredentials:
    return make_app(organization=other_organization, app_owner=outsider, name="Globex service")


def request_token(client, creds: AppCredentials, *, secret: str | None = None, **params):
    """POST to /oauth/token with Basic auth and return the response."""
    data = {"grant_type": "client_credentials", **params}
    return client.post(
        "/oauth/token", data, HTTP_AUTHORIZATION=basic(creds.client_id, secret or creds.client_secret)
    )


def obtain_token(client, creds: AppCredentials, **params) -> str:
    response = request_token(client, creds, **params)
    assert response.status_code == 200, response.content
    return json.loads(response.content)["access_token"]


@pytest.fixture
def token_for(client):
    def get(creds: AppCredentials, **params) -> str:
        return obtain_token(client, creds, **params)

    return get
