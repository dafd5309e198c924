"""Token exchange (RFC 8693) under the authority rule: an exchanged token dies with its key and its
gateway's permission whatever way the gateway signs in, and carries no more than the key's owner may.
"""

from __future__ import annotations

import json

import jwt
import pytest
from django.conf import settings
from django.test import Client

from credentials.api_keys.services import api_key_create, api_key_revoke
from credentials.models import Scope
from portal.models import Membership
from portal.services.organizations import membership_change_role
from tests.tokens.conftest import basic
from tokens.clients.services import m2m_app_set_exchange
from tokens.federation.services import federated_identity_create
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE
from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE

pytestmark = pytest.mark.django_db

AUD = settings.PORTAL_ISSUER


@pytest.fixture
def customer_key(organization, owner, scopes):
    return api_key_create(
        organization=organization, name="shop", owner=owner, scopes=["orders:read"], actor=owner
    )


@pytest.fixture
def federated_gateway(make_app, other_organization, outsider, oidc_issuer):
    """A staff-allowed gateway (other organisation) that authenticates by workload identity federation."""
    creds = make_app(organization=other_organization, app_owner=outsider, name="API gateway")
    creds.application = m2m_app_set_exchange(application=creds.application, allowed=True, actor=None)
    federated_identity_create(
        application=creds.application,
        actor=None,
        issuer=oidc_issuer.url,
        subject="repo:globex/gateway:ref:refs/heads/main",
    )
    return creds


def _introspect(client, creds, token: str) -> dict:
    response = client.post(
        "/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret)
    )
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def _exchange_as(gateway, oidc_issuer, plaintext: str) -> str:
    """Exchange an API key as a gateway that signs in with a trust in `oidc_issuer`'s workload."""
    response = Client().post(
        "/oauth/token",
        {
            "grant_type": GRANT_TYPE,
            "client_id": gateway.client_id,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": oidc_issuer.github_actions(audience=AUD, repository="globex/gateway"),
            "subject_token": plaintext,
            "subject_token_type": API_KEY_TOKEN_TYPE,
        },
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def test_federated_gateway_exchanged_token_dies_with_the_api_key(
    client, oidc_issuer, federated_gateway, customer_key, make_app
):
    """A token a gateway signed in with a trust (`fed`) got for an API key dies with the key."""
    api_key, plaintext = customer_key
    token = _exchange_as(federated_gateway, oidc_issuer, plaintext)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == f"api_key:{api_key.key_id}" and "fed" in claims

    # An application of the key's own organisation introspects it (org_id matches).
    acme_app = make_app(name="acme introspector")
    assert _introspect(client, acme_app, token)["active"] is True

    api_key_revoke(api_key=api_key, actor=None, reason="leaked")
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    # RFC 7662 §2.2: a revoked token is inactive, at introspection as everywhere.
    assert _introspect(client, acme_app, token) == {"active": False}


def test_federated_gateway_exchanged_token_dies_when_staff_clear_the_gateway_mark(
    client, oidc_issuer, federated_gateway, customer_key, make_app
):
    _api_key, plaintext = customer_key
    token = _exchange_as(federated_gateway, oidc_issuer, plaintext)
    acme_app = make_app(name="acme introspector")
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    m2m_app_set_exchange(application=federated_gateway.application, allowed=False, actor=None)
    # Staff stopped the gateway exchanging: its exchanged tokens must die at once (docs/m2m.md),
    # at the portal's own API (whoami) and at introspection, as for a secret or keyed gateway.
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert _introspect(client, acme_app, token) == {"active": False}


@pytest.fixture
def secret_gateway(make_app, other_organization, outsider):
    creds = make_app(organization=other_organization, app_owner=outsider, name="API gateway")
    creds.application = m2m_app_set_exchange(application=creds.application, allowed=True, actor=None)
    return creds


def test_exchanged_token_scopes_are_bounded_by_the_key_owners_current_role(
    client, organization, owner, admin_user, scopes, secret_gateway, make_app
):
    """A key's power is its scopes ∩ its owner's current role: so is the token exchanged for it
    (its `scope` answer, its claim and its introspection), as for the client-credentials grant."""
    Scope.objects.get_or_create(name="webhooks:manage", defaults={"description": "manage webhooks"})
    _key, plaintext = api_key_create(
        organization=organization,
        name="ops",
        owner=admin_user,
        scopes=["orders:read", "webhooks:manage"],
        actor=admin_user,
    )
    membership = Membership.objects.get(user=admin_user, organization=organization)
    membership_change_role(membership=membership, role="member", actor=owner)

    response = client.post(
        "/oauth/token",
        {
            "grant_type": GRANT_TYPE,
            "subject_token": plaintext,
            "subject_token_type": API_KEY_TOKEN_TYPE,
        },
        HTTP_AUTHORIZATION=basic(secret_gateway.client_id, secret_gateway.client_secret),
    )
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    acme_app = make_app(name="acme introspector")
    introspected = _introspect(client, acme_app, body["access_token"])
    assert "webhooks:manage" not in body["scope"].split()
    assert "webhooks:manage" not in claims["scope"].split()
    assert "webhooks:manage" not in introspected["scope"].split()
