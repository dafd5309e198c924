"""Changing the scopes of a credential that is not active is refused for its state, not for the value
sent: both kinds answer `409 {"detail", "code": "inactive"}` (as credentials.governance.edits does)."""

from __future__ import annotations

import json

import pytest

from credentials.api_keys.services import api_key_request, api_key_revoke
from credentials.governance.org_policy import policy_update
from tokens.clients.services import m2m_app_revoke

pytestmark = pytest.mark.django_db

SCOPES = {"scopes": ["orders:read", "billing:read"]}


def _patch(client, path: str):
    return client.patch(path, json.dumps(SCOPES), "application/json")


def test_scopes_of_a_revoked_credential_are_refused_alike_for_both_kinds(
    owner, owner_client, make_key, make_app
):
    key, _ = make_key()
    api_key_revoke(api_key=key, actor=owner, reason="gone")
    app = make_app()
    m2m_app_revoke(application=app.application, actor=owner)
    as_app = _patch(owner_client, f"/api/v1/orgs/acme/m2m-apps/{app.application.pk}/")
    as_key = _patch(owner_client, f"/api/v1/orgs/acme/api-keys/{key.key_id}/")
    assert (as_app.status_code, as_app.json().get("code")) == (409, "inactive"), as_app.json()
    assert (as_key.status_code, as_key.json().get("code")) == (409, "inactive"), as_key.json()
    assert "scopes" not in as_key.json()


def test_scopes_of_a_pending_key_are_refused_as_inactive(organization, owner, owner_client, scopes):
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    key, _request = api_key_request(
        organization=organization,
        name="waiting",
        owner=owner,
        scopes=["orders:read"],
        requester=owner,
        justification="nightly export",
    )
    response = _patch(owner_client, f"/api/v1/orgs/acme/api-keys/{key.key_id}/")
    assert (response.status_code, response.json().get("code")) == (409, "inactive"), response.json()
