"""An application may choose any catalogued audience over REST, as in the dashboard (identifiers
hold up to 2000 characters; the REST serializer stopped at 255)."""

from __future__ import annotations

import json

import pytest

from tests.factories import ResourceServerFactory
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.django_db


def test_a_long_catalogued_audience_can_be_chosen_over_rest(owner_client, owner, organization, scopes):
    identifier = "https://api.example.com/" + "v" * 300
    ResourceServerFactory(identifier=identifier, name="Orders (long identifier)")
    # The service (dashboard, CLI) accepts it.
    application, _secret = m2m_app_create(
        organization=organization, name="svc", owner=owner, actor=owner, audiences=[identifier]
    )
    assert application.allowed_audiences == [identifier]
    response = owner_client.post(
        "/api/v1/orgs/acme/m2m-apps/",
        json.dumps({"name": "Billing", "audiences": [identifier]}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["audiences"] == [identifier]
