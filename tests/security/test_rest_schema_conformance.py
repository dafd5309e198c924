"""What the REST API serves is what `/api/schema/` declares: a client generated from the schema
accepts every answer, refusals included (each served status is declared), and knows every field."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from credentials.api_keys.services import api_key_request
from credentials.governance.models import CredentialRequest
from credentials.webhooks.services import webhook_endpoint_create
from tests.factories import make_api_key, make_m2m_app
from tests.security.openapi import conformance_errors, openapi
from tests.tokens.conftest import basic
from tokens.clients.services import m2m_app_set_exchange
from tokens.protocol import exchange

pytestmark = pytest.mark.django_db
REQUESTS = "/api/v1/orgs/acme/requests/"


@pytest.fixture
def waiting(organization, member, scopes) -> CredentialRequest:
    _key, request = api_key_request(
        organization=organization,
        name="nightly export",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="Nightly export",
    )
    return request


def test_the_requests_list_is_declared_as_the_page_it_serves(owner_client, waiting):
    """The list numbers its own pages (`{"count", "page", "pages", "results"}`): the schema must not
    wrap that page in DRF's paginator (`{"count", "next", "previous", "results": [page, …]}`)."""
    response = owner_client.get(REQUESTS)
    assert response.status_code == 200
    assert set(response.json()) == {"count", "page", "pages", "results"}
    assert conformance_errors("GET", REQUESTS, 200, response.json()) == []


def test_a_waiting_request_and_one_whose_requester_is_gone_are_allowed_by_the_schema(owner_client, waiting):
    """A waiting request has no decider yet (`"decided_by": null`); a deleted requester's account
    leaves `"requester": null` (the row keeps the request)."""
    path = f"{REQUESTS}{waiting.pk}/"
    served = owner_client.get(path).json()
    assert served["decided_by"] is None
    assert conformance_errors("GET", path, 200, served) == []

    CredentialRequest.objects.filter(pk=waiting.pk).update(requester=None)
    served = owner_client.get(path).json()
    assert served["requester"] is None
    assert conformance_errors("GET", path, 200, served) == []


def test_webhook_event_types_are_declared_as_a_list_of_strings(settings, owner, organization, owner_client):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True
    endpoint, _secret = webhook_endpoint_create(
        organization=organization, url="http://127.0.0.1:9/hook", event_types=["created"], actor=owner
    )
    path = f"/api/v1/orgs/acme/webhooks/{endpoint.pk}/"
    served = owner_client.get(path).json()
    assert served["event_types"] == ["created"]
    described = openapi()["components"]["schemas"]["WebhookEndpoint"]["properties"]["event_types"]
    assert described.get("type") == "array" and described.get("items", {}).get("type") == "string", described
    assert conformance_errors("GET", path, 200, served) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        # BRIEF: whoami answers 401 (WWW-Authenticate: Bearer) for anything unusable.
        ("GET", "/api/v1/whoami", None, 401),
        ("POST", "/api/v1/keys/verify", {"key": "x"}, 401),
        ("POST", "/api/v1/orgs/acme/api-keys/", {}, 400),
        ("GET", "/api/v1/orgs/acme/api-keys/AAAAAAAAAAAA/", None, 404),
        ("POST", "/api/v1/orgs/acme/webhooks/", {}, 400),
    ],
)
def test_refusals_served_are_declared(owner, scopes, method, path, body, status):
    client = Client()
    if "/orgs/" in path:
        client.force_login(owner)
    response = client.generic(
        method, path, json.dumps(body) if body is not None else "", content_type="application/json"
    )
    assert response.status_code == status, response.content
    assert conformance_errors(method, path, status, response.json()) == []


def _whoami(bearer: str) -> dict:
    response = Client(HTTP_AUTHORIZATION=f"Bearer {bearer}").get("/api/v1/whoami")
    assert response.status_code == 200, response.content
    return response.json()


def _token(client_id: str, secret: str, **form) -> str:
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials", **form},
        HTTP_AUTHORIZATION=basic(client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def test_every_field_whoami_serves_is_declared(organization, owner, other_organization, outsider, scopes):
    """whoami adds what each kind says about itself: a key's `name`; an application token's
    `client_id`, `application`, `resource_server`; an exchanged token's `api_key_id`, `api_key`,
    `actor`, `environment`."""
    _row, key = make_api_key(organization, owner, name="billing export", scopes=["orders:read"])
    application, secret = make_m2m_app(organization, owner, scopes=["orders:read"])
    gateway, gateway_secret = make_m2m_app(other_organization, outsider, name="API gateway")
    m2m_app_set_exchange(application=gateway, allowed=True, actor=None)
    exchanged = Client().post(
        "/oauth/token",
        {
            "grant_type": exchange.GRANT_TYPE,
            "subject_token": key,
            "subject_token_type": exchange.API_KEY_TOKEN_TYPE,
        },
        HTTP_AUTHORIZATION=basic(gateway.client_id, gateway_secret),
    )
    assert exchanged.status_code == 200, exchanged.content

    declared = set(openapi()["components"]["schemas"]["WhoAmI"]["properties"])
    for bearer, adds in (
        (key, {"name"}),
        (_token(application.client_id, secret), {"client_id", "application", "resource_server"}),
        (exchanged.json()["access_token"], {"api_key_id", "api_key", "actor", "environment"}),
    ):
        served = _whoami(bearer)
        assert adds <= set(served), (adds, served)
        assert set(served) <= declared, sorted(set(served) - declared)
        assert conformance_errors("GET", "/api/v1/whoami", 200, served) == []
