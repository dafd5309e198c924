"""Object ids sent in the body or the query string (owners, credentials, audiences, requests).

Another organisation's id is refused without side effects; a plain member (or their narrow key)
cannot use a body field to do what the authority table keeps for owners and admins.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_request
from credentials.governance.org_policy import policy_for
from portal.models import AuditEvent
from tests.factories import (
    ResourceServerFactory,
    ScopeFactory,
    make_api_key,
    make_m2m_app,
)
from tests.security.authority import state, token_for
from tests.tokens.conftest import basic
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh(settings):
    settings.PORTAL_STEP_UP_SECONDS = 3600


@pytest.fixture
def world(organization, other_organization, owner, admin_user, member, outsider, scopes):
    for name in ("m2m_apps:manage", "usage:read", "requests:decide", "webhooks:manage"):
        ScopeFactory(name=name)

    policy_for(organization)  # created on first read: not a side effect of the request
    return organization, other_organization


def bearer(value: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {value}")


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- owners named in the body -------------------------------------------------------------------


def test_rest_api_key_create_for_another_organisations_user_is_refused(world, owner, outsider):
    org, _other = world
    before = state()
    response = session(owner).post(
        reverse("api-org-api-key-list", args=[org.slug]),
        {"name": "x", "owner": outsider.email, "scopes": ["orders:read"]},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert state() == before


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_rest_member_cannot_create_for_someone_else(world, owner, member, kind):
    org, _other = world
    url = reverse("api-org-api-key-list" if kind == "api_key" else "api-org-m2m-app-list", args=[org.slug])
    _row, key = make_api_key(org, member, scopes=["api_keys:manage", "m2m_apps:manage"], name="member's")
    before = state()
    for client in (session(member), bearer(key)):
        response = client.post(
            url,
            {"name": "x", "owner": owner.email, "scopes": ["orders:read"]},
            content_type="application/json",
        )
        assert response.status_code in (401, 403), response.content
    assert state() == before


def _detail_url_of_new(kind: str, org, holder) -> str:
    """Make a credential of `kind` held by `holder` and return its REST detail URL."""
    if kind == "api_key":
        row, _ = make_api_key(org, holder, scopes=["orders:read"], name="mine")
        return reverse("api-org-api-key-detail", args=[org.slug, row.key_id])
    row, _ = make_m2m_app(org, holder, scopes=["orders:read"], name="mine")
    return reverse("api-org-m2m-app-detail", args=[org.slug, row.pk])


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_rest_member_cannot_reassign_their_own_credential(world, owner, member, kind):
    org, _other = world
    url = _detail_url_of_new(kind, org, member)
    before = state()
    response = session(member).patch(url, {"owner": owner.email}, content_type="application/json")
    assert response.status_code == 403, response.content
    assert state() == before


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_rest_owner_cannot_reassign_to_another_organisations_user(world, owner, outsider, kind):
    org, _other = world
    url = _detail_url_of_new(kind, org, owner)
    before = state()
    response = session(owner).patch(url, {"owner": outsider.email}, content_type="application/json")
    assert response.status_code == 400, response.content
    assert state() == before


def test_dashboard_member_cannot_create_a_key_for_someone_else(world, owner, member):
    org, _other = world
    before = state()
    response = session(member).post(
        reverse("org-api-key-create", args=[org.slug]),
        {"name": "x", "owner": owner.pk, "scopes": ["orders:read"], "environment": "test"},
    )
    assert response.status_code in (400, 403)
    assert state() == before
    assert not ApiKey.objects.filter(owner=owner, name="x").exists()


def test_dashboard_member_cannot_create_an_app_for_someone_else(world, owner, member):
    org, _other = world
    before = state()
    response = session(member).post(
        reverse("org-app-create", args=[org.slug]),
        {"name": "x", "owner": owner.pk, "scopes": ["orders:read"], "token_lifetime": 900},
    )
    assert response.status_code in (400, 403)
    assert state() == before
    assert not M2MApplication.objects.filter(owner=owner, name="x").exists()


@pytest.mark.parametrize("url_name", ["org-api-key-create", "org-app-create"])
def test_dashboard_owner_cannot_create_for_another_organisations_user(world, owner, outsider, url_name):
    org, _other = world
    before = state()
    response = session(owner).post(
        reverse(url_name, args=[org.slug]),
        {
            "name": "x",
            "owner": outsider.pk,
            "scopes": ["orders:read"],
            "environment": "test",
            "token_lifetime": 900,
        },
    )
    assert response.status_code == 400
    assert state() == before


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_dashboard_reassign_to_another_organisations_user_is_refused(world, owner, outsider, kind):
    org, _other = world
    if kind == "api_key":
        row, _ = make_api_key(org, owner, scopes=["orders:read"], name="mine")
        url = reverse("org-api-key-reassign", args=[org.slug, row.key_id])
    else:
        row, _ = make_m2m_app(org, owner, scopes=["orders:read"], name="mine")
        url = reverse("org-app-reassign", args=[org.slug, row.pk])
    before = state()
    response = session(owner).post(url, {"owner-owner": outsider.pk})
    assert response.status_code in (302, 400)
    assert state() == before


# --- credentials named in the query string ----------------------------------------------------


def test_usage_of_another_organisations_credential_is_a_field_error(world, owner, outsider):
    org, other = world
    theirs, _ = make_api_key(other, outsider, name="theirs")
    their_app, _ = make_m2m_app(other, outsider, name="their app")
    for ref in (theirs.key_id, their_app.client_id):
        response = session(owner).get(reverse("api-org-usage", args=[org.slug]), {"credential": ref})
        assert response.status_code == 400, response.content
        assert b"theirs" not in response.content and b"their app" not in response.content


def test_usage_csv_of_another_organisations_credential_is_refused(world, owner, outsider):
    org, other = world
    theirs, _ = make_api_key(other, outsider, name="theirs")
    response = session(owner).get(
        reverse("api-org-usage", args=[org.slug]), {"credential": theirs.key_id, "format": "csv"}
    )
    assert response.status_code == 400
    assert b"theirs" not in response.content


@pytest.mark.parametrize("url_name", ["api-org-api-key-list", "api-org-m2m-app-list"])
def test_owner_filter_with_another_organisations_user_lists_nothing(world, owner, outsider, url_name):
    org, other = world
    make_api_key(org, owner, name="ours")
    make_m2m_app(org, owner, name="ours")
    response = session(owner).get(reverse(url_name, args=[org.slug]), {"owner": outsider.email})
    assert response.status_code == 200
    body = response.json()
    results = body["results"] if isinstance(body, dict) else body
    assert results == []


def test_inventory_api_owner_filter_with_another_organisations_user(world, owner, outsider):
    org, other = world
    make_api_key(org, owner, name="ours")
    make_api_key(other, outsider, name="theirs")
    response = session(owner).get(reverse("api-org-inventory", args=[org.slug]), {"owner": outsider.pk})
    assert response.status_code in (200, 400)
    assert b"theirs" not in response.content
    if response.status_code == 200:
        assert response.json()["results"] == []


# --- audiences named in the body --------------------------------------------------------------


def test_app_cannot_name_another_organisations_own_api(world, owner, other_organization):
    org, other = world
    server = ResourceServerFactory(identifier="https://globex.example/api", organizations=[other])
    before = state()
    response = session(owner).post(
        reverse("api-org-m2m-app-list", args=[org.slug]),
        {"name": "x", "scopes": ["orders:read"], "audiences": [server.identifier]},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert state() == before
    response = session(owner).post(
        reverse("org-app-create", args=[org.slug]),
        {"name": "x", "owner": owner.pk, "scopes": ["orders:read"], "token_lifetime": 900,
         "audiences": [server.identifier]},
    )  # fmt: skip
    assert response.status_code == 400
    assert state() == before


def test_token_for_another_organisations_own_api_is_refused(world, owner, other_organization):
    org, other = world
    server = ResourceServerFactory(identifier="https://globex.example/api", organizations=[other])
    app, secret = make_m2m_app(org, owner, scopes=["orders:read"])

    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials", "resource": server.identifier},
        HTTP_AUTHORIZATION=basic(app.client_id, secret),
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_target"


# --- tokens and keys presented in the body ----------------------------------------------------


def test_a_client_cannot_revoke_another_organisations_token(world, owner, outsider):
    org, other = world

    ours, our_secret = make_m2m_app(org, owner, scopes=["orders:read"], name="ours")
    theirs, their_secret = make_m2m_app(other, outsider, scopes=["orders:read"], name="theirs")
    their_token = token_for(theirs, their_secret)
    audit = AuditEvent.objects.count()
    response = Client().post(
        "/oauth/revoke", {"token": their_token}, HTTP_AUTHORIZATION=basic(ours.client_id, our_secret)
    )
    assert response.status_code in (200, 400, 401, 403)
    assert AuditEvent.objects.count() == audit
    whoami = bearer(their_token).get("/api/v1/whoami")
    assert whoami.status_code == 200, "another organisation's client revoked the token"


def test_verify_does_not_describe_another_organisations_key(world, owner, outsider):
    org, other = world
    _row, verifier = make_api_key(org, owner, scopes=["api_keys:verify"], name="verifier")
    theirs, their_key = make_api_key(other, outsider, scopes=["orders:read"], name="theirs")
    response = bearer(verifier).post(
        reverse("api-keys-verify"), {"key": their_key}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json() == {"valid": False, "code": "not_found"}


# --- requests decided from the approvals queue (ids in the URL, but the queue's own forms) -------


def test_dashboard_decide_another_organisations_request_under_own_slug(world, owner, outsider):

    org, other = world
    _key, their_request = api_key_request(
        organization=other, name="wants", owner=outsider, scopes=["orders:read"], requester=outsider,
        justification="x",
    )  # fmt: skip
    before = state()
    for decision in ("approve", "deny"):
        response = session(owner).post(
            reverse("org-request-decide", args=[org.slug, their_request.pk]),
            {"decision": decision, "action": decision, "reason": "x"},
        )
        assert response.status_code == 404
    assert state() == before


def test_introspection_of_another_organisations_token_is_inactive(world, owner, outsider):
    org, other = world

    ours, our_secret = make_m2m_app(org, owner, scopes=["orders:read"], name="ours")
    theirs, their_secret = make_m2m_app(other, outsider, scopes=["orders:read"], name="theirs")
    their_token = token_for(theirs, their_secret)
    response = Client().post(
        "/oauth/introspect", {"token": their_token}, HTTP_AUTHORIZATION=basic(ours.client_id, our_secret)
    )
    assert response.status_code in (200, 401, 403)
    if response.status_code == 200:
        assert response.json() == {"active": False}
