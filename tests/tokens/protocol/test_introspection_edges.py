"""Edges of RFC 7662/7009/8707: a lone-surrogate `kid`, several `resource`s, the scopes and tenancy
introspection reports."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from portal.models import Membership, Role
from portal.services.organizations import membership_remove
from tests.factories import MembershipFactory, OrganizationFactory
from tests.tokens.conftest import basic, obtain_token, request_token

pytestmark = pytest.mark.django_db


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _introspect(client, creds, token):
    return client.post(
        "/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret)
    )


# --- a lone surrogate in the JOSE header's kid -----------------------------------------------

# `{"kid": "\ud800"}` is valid JSON (an escaped lone surrogate) and pure ASCII on the wire.
SURROGATE_KID_TOKEN = ".".join(
    [_b64(b'{"typ":"at+jwt","alg":"RS256","kid":"\\ud800"}'), _b64(b"{}"), _b64(b"sig")]
)


def test_introspecting_a_token_whose_kid_is_a_lone_surrogate_is_inactive_not_a_500(app):
    client = Client(raise_request_exception=False)
    response = _introspect(client, app, SURROGATE_KID_TOKEN)
    assert response.status_code == 200
    assert json.loads(response.content) == {"active": False}


def test_whoami_with_a_token_whose_kid_is_a_lone_surrogate_is_401_not_a_500(db):
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {SURROGATE_KID_TOKEN}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoking_a_token_whose_kid_is_a_lone_surrogate_is_200_not_a_500(app):
    client = Client(raise_request_exception=False)
    response = client.post(
        "/oauth/revoke",
        {"token": SURROGATE_KID_TOKEN},
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 200


# --- RFC 8707: several resource parameters -----------------------------------------------------


def test_two_resource_parameters_are_invalid_target_not_invalid_request(client, make_app, catalogue):
    creds = make_app(audiences=["https://orders.example.com", "https://billing.example.com"])
    response = request_token(
        client, creds, resource=["https://orders.example.com", "https://billing.example.com"]
    )
    assert response.status_code == 400
    # RFC 8707 §2: `resource` MAY be repeated; a server that will not serve the combination
    # answers invalid_target (and tokens/protocol/audience.py says so: "Request one resource per token.").
    assert json.loads(response.content)["error"] == "invalid_target"


# --- RFC 7662: the scope introspection reports ----------------------------------------------


def test_introspection_reports_only_the_scopes_the_token_may_still_use(
    client, make_app, member, owner, organization
):
    creds = make_app(app_owner=member, scopes=["orders:read", "api_keys:verify"])
    token = obtain_token(client, creds)
    sibling = make_app(name="Resource service")  # owned by the owner, same organisation
    membership_remove(membership=Membership.objects.get(user=member, organization=organization), actor=owner)
    whoami = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert whoami.status_code == 200
    assert json.loads(whoami.content)["scopes"] == ["orders:read"]  # the portal bounds it now
    body = json.loads(_introspect(client, sibling, token).content)
    assert body["active"] is True
    # The authority rule: scopes ∩ the owner's current membership, re-evaluated on every
    # request, as whoami and POST /api/v1/keys/verify answer.
    assert body["scope"].split() == ["orders:read"]


# --- tenancy of introspection: org_id is a slug --------------------------------------------


def test_another_organisation_given_a_renamed_organisations_old_slug_cannot_introspect_its_tokens(
    client, app, organization, outsider, make_app
):
    token = obtain_token(client, app)  # org_id "acme"
    organization.slug = "acme-renamed"  # staff rename it in the admin
    organization.save()
    newcomer = OrganizationFactory(slug="acme", name="Another Acme")
    MembershipFactory(organization=newcomer, user=outsider, role=Role.OWNER)
    stranger = make_app(organization=newcomer, app_owner=outsider, name="Newcomer service")
    # The token belongs to the renamed organisation; the newcomer must learn nothing about it.
    assert json.loads(_introspect(client, stranger, token).content) == {"active": False}


def test_introspection_costs_three_statements(client, app, django_assert_num_queries):
    # The caller's secret, the token's revocation and application state, and whom the token acts
    # for now (its application and the owner's role, as whoami reads them).
    token = obtain_token(client, app)
    assert _introspect(client, app, token).json()["active"] is True  # warm: signing key, catalogue
    with django_assert_num_queries(3):
        assert _introspect(client, app, token).json()["active"] is True
