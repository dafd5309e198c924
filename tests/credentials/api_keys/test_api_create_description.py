"""A key's description given at creation over REST is kept (it was dropped with a 201)."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.models import ApiKey
from tests.factories import ScopeFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_key_client(organization, owner, scopes):
    ScopeFactory(name="api_keys:manage")
    _row, key = make_api_key(organization, owner, name="ops", scopes=["api_keys:manage", "orders:read"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _create(client, organization, **body):
    return client.post(
        f"/api/v1/orgs/{organization.slug}/api-keys/",
        {"name": "ci", "scopes": ["orders:read"], **body},
        content_type="application/json",
    )


def test_the_description_given_at_creation_is_kept(manager_key_client, organization):
    response = _create(manager_key_client, organization, description="  For the CI runner  ")
    assert response.status_code == 201, response.content
    assert response.json()["description"] == "For the CI runner"
    assert ApiKey.objects.get(key_id=response.json()["id"]).description == "For the CI runner"


def test_a_description_over_500_characters_is_a_field_error(manager_key_client, organization):
    response = _create(manager_key_client, organization, description="x" * 501)
    assert response.status_code == 400
    assert "description" in response.json()
    assert not ApiKey.objects.filter(organization=organization, name="ci").exists()


def test_no_description_is_an_empty_one(manager_key_client, organization):
    response = _create(manager_key_client, organization)
    assert response.status_code == 201 and response.json()["description"] == ""
