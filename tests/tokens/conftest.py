"""Fixtures for the tokens room: the audience catalogue, applications' one-time secrets, token helpers.

`scopes`, `make_app` and `make_key` come from `tests/conftest.py`.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.factories import AppCredentials, ResourceServerFactory

__all__ = ["AppCredentials", "basic", "obtain_token", "request_token"]


def basic(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


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
