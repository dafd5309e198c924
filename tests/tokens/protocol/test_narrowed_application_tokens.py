"""A token acts with its application's scopes as they are now, not as they were when it was
minted: narrowing an application narrows the tokens it already holds at once, on the portal's
REST API, at whoami and at introspection (docs/governance.md, "Narrowing applies at once"), as
narrowing a key narrows the tokens exchanged for it."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.factories import ScopeFactory, make_m2m_app
from tests.security.test_authority_matrix import _token
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db
APPS = "/api/v1/orgs/acme/m2m-apps/"


@pytest.fixture
def automation(owner, organization, scopes):
    ScopeFactory(name="m2m_apps:manage")
    app, secret = make_m2m_app(
        organization, owner, name="automation", scopes=["m2m_apps:manage", "orders:read"]
    )
    return app, Client(HTTP_AUTHORIZATION=f"Bearer {_token(app, secret)}"), _token(app, secret)


def _narrow_to_orders_read(owner_client, app) -> None:
    response = owner_client.patch(
        f"{APPS}{app.pk}/", json.dumps({"scopes": ["orders:read"]}), "application/json"
    )
    assert response.status_code == 200 and response.json()["scopes"] == ["orders:read"], response.content


def test_a_token_minted_before_a_narrowing_can_no_longer_use_the_removed_scope(owner_client, automation):
    app, bearer, _ = automation
    assert bearer.get(APPS).status_code == 200
    _narrow_to_orders_read(owner_client, app)  # an admin takes m2m_apps:manage away

    response = bearer.post(
        APPS, json.dumps({"name": "persisted", "scopes": ["m2m_apps:manage"]}), "application/json"
    )
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"
    assert not M2MApplication.objects.filter(name="persisted").exists()
    assert bearer.get("/api/v1/whoami").json()["scopes"] == ["orders:read"]


def test_introspection_reports_only_the_scopes_the_application_still_holds(owner_client, automation):
    app, _, token = automation
    _narrow_to_orders_read(owner_client, app)
    resource_server, rs_secret = make_m2m_app(
        app.organization, app.owner, name="gateway", scopes=["orders:read"]
    )
    answer = (
        Client()
        .post(
            "/oauth/introspect",
            {"token": token, "client_id": resource_server.client_id, "client_secret": rs_secret},
        )
        .json()
    )
    assert answer["active"] is True and answer["scope"] == "orders:read"
