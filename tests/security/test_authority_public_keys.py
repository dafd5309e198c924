"""Withdrawing a public key is `m2m_app.rotate`, like adding one: a narrow credential may do
neither to an application wider than itself (`exceeds_credential`)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import ScopeFactory, make_api_key, make_m2m_app
from tests.security.test_authority_matrix import _pem
from tokens.clients.services import client_public_key_add

pytestmark = pytest.mark.django_db


def test_a_narrow_key_cannot_remove_a_key_of_a_wider_application(organization, owner, scopes):
    ScopeFactory(name="m2m_apps:manage")
    wide, _ = make_m2m_app(
        organization,
        owner,
        name="wide",
        scopes=["orders:read", "orders:write"],
        auth_method="private_key_jwt",
    )
    public_key = client_public_key_add(application=wide, jwk_or_pem=_pem(), actor=owner)
    _row, narrow = make_api_key(organization, owner, name="narrow", scopes=["m2m_apps:manage"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {narrow}")

    # Adding a key to the wider application is refused, as the table says ...
    added = client.post(
        reverse("api-org-m2m-app-public-keys", args=[organization.slug, wide.pk]),
        {"public_key": _pem()},
        content_type="application/json",
    )
    assert added.status_code == 403 and added.json()["code"] == "exceeds_credential"

    # ... and removing one (the same action, m2m_app.rotate) must be too.
    response = client.post(
        reverse("api-org-m2m-app-public-key-revoke", args=[organization.slug, wide.pk, public_key.pk]),
        {},
        content_type="application/json",
    )
    public_key.refresh_from_db()
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "exceeds_credential"
    assert public_key.revoked_at is None
