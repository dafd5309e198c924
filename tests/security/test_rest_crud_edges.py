"""The REST API of API keys and M2M applications as a customer's automation uses it: filters,
sending back what was read, the schema describing what is served."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from credentials.governance.org_policy import policy_update

pytestmark = pytest.mark.django_db
KEYS = "/api/v1/orgs/acme/api-keys/"
APPS = "/api/v1/orgs/acme/m2m-apps/"


def _json(body) -> str:
    return json.dumps(body)


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def _ref(schema: dict, ref: str) -> dict:
    node = schema
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


# --- list filters: a documented filter with a value it does not know ----------------------------


def test_an_unknown_status_filter_on_api_keys_is_refused_not_ignored(owner_client, make_key):
    """`?status=revokd` (a typo) must not answer with every key: the schema declares an enum."""
    make_key(name="live one")
    response = owner_client.get(KEYS + "?status=revokd")
    # environment=prod already answers an empty list; status must not answer everything.
    assert response.status_code == 400 or response.json()["count"] == 0, response.json()


def test_a_status_filter_the_m2m_api_does_not_know_is_refused_not_ignored(owner_client, make_app):
    """`?status=expired` works on the API-keys list; on the M2M list it silently returns every
    application, active ones included (a script "revoke everything expired" would revoke them)."""
    make_app(name="active app")
    for query in ("?status=expired", "?token_endpoint_auth_method=client_secret_post"):
        response = owner_client.get(APPS + query)
        assert response.status_code == 400 or response.json()["count"] == 0, (query, response.json())


# --- the OpenAPI schema against what is served -------------------------------------------------


def test_public_keys_list_is_described_as_what_it_returns(owner_client, scopes, schema):
    """The schema promises `{"count", "next", "previous", "results"}` and a `page` parameter; the
    endpoint answers a bare JSON array (tokens/clients/api.py public_keys)."""
    created = owner_client.post(
        APPS, _json({"name": "Billing", "scopes": ["orders:read"]}), "application/json"
    )
    app_id = created.json()["id"]
    body = owner_client.get(f"{APPS}{app_id}/public-keys/").json()
    operation = schema["paths"]["/api/v1/orgs/{org_slug}/m2m-apps/{app_id}/public-keys/"]["get"]
    described = operation["responses"]["200"]["content"]["application/json"]["schema"]
    if "$ref" in described:
        described = _ref(schema, described["$ref"])
    served_type = "array" if isinstance(body, list) else "object"
    assert described.get("type") == served_type, (described, body)


def test_api_key_scopes_are_described_as_a_list_of_strings(owner_client, make_key, schema):
    """`scopes` of an API key is served as a JSON array of strings; the schema gives it no type at all."""
    key, _ = make_key()
    served = owner_client.get(f"{KEYS}{key.key_id}/").json()["scopes"]
    assert isinstance(served, list)
    described = schema["components"]["schemas"]["ApiKey"]["properties"]["scopes"]
    assert described.get("type") == "array" and described.get("items", {}).get("type") == "string", described


# --- PATCH: a client that sends back what it read, with one change ------------------------------


def test_a_key_managing_itself_can_send_back_what_it_read_with_a_new_name(make_key):
    """docs/api-keys.md: any other field the key shows is a 400 only "sent with a different value".
    The automation's own GET records a use, so `last_used_at`/`last_used_ip` change under it and
    the read-modify-write PATCH is refused although the client changed nothing but the name."""
    row, plaintext = make_key(name="automation", scopes=["api_keys:manage", "orders:read"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    read = client.get(f"{KEYS}{row.key_id}/").json()
    response = client.patch(
        f"{KEYS}{row.key_id}/", _json({**read, "name": "automation v2"}), "application/json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "automation v2"


def test_an_application_used_between_read_and_patch_can_still_be_renamed(owner_client, scopes):
    """The same for M2M applications: a token minted between the GET and the PATCH (secrets'
    `last_used_at`) turns the documented round trip into `400 secrets/last_used_at cannot be changed`."""
    created = owner_client.post(
        APPS, _json({"name": "Billing", "scopes": ["orders:read"]}), "application/json"
    )
    app = created.json()
    read = owner_client.get(f"{APPS}{app['id']}/").json()
    token = Client().post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )
    assert token.status_code == 200, token.content
    response = owner_client.patch(
        f"{APPS}{app['id']}/", _json({**read, "name": "Billing v2"}), "application/json"
    )
    assert response.status_code == 200, response.json()


# --- JSON shape: updated_at ---------------------------------------------------------------------


def test_an_applications_updated_at_moves_when_its_scopes_change(owner_client, scopes):
    """`updated_at` is shown for change detection; a scope change (the most important one) leaves
    it as it was."""
    created = owner_client.post(
        APPS, _json({"name": "Billing", "scopes": ["orders:read"]}), "application/json"
    )
    app = created.json()
    changed = owner_client.patch(
        f"{APPS}{app['id']}/", _json({"scopes": ["orders:read", "orders:write"]}), "application/json"
    )
    assert changed.status_code == 200 and changed.json()["scopes"] == ["orders:read", "orders:write"]
    assert changed.json()["updated_at"] != app["updated_at"], changed.json()["updated_at"]


# --- refusals: the same refusal, the same answer for both kinds ---------------------------------


def test_an_api_key_scope_increase_awaiting_approval_is_403_approval_required(
    owner, owner_client, organization, make_key
):
    """docs/governance.md: scope increases that need approval are refused with 403 `approval_required`
    (the M2M API does); the API-keys PATCH answers a 400 field error without a `code`, although every
    REST refusal carries one (BRIEF, second round)."""
    key, _ = make_key(scopes=["orders:read"])
    policy_update(organization=organization, actor=owner, approve_scope_increases=True)
    response = owner_client.patch(
        f"{KEYS}{key.key_id}/", _json({"scopes": ["orders:read", "orders:write"]}), "application/json"
    )
    assert response.status_code == 403, response.json()
    assert response.json()["code"] == "approval_required"


def test_an_applications_suspension_reason_as_served_is_allowed_by_the_schema(owner_client, scopes, schema):
    """Every active application is served with `"suspension_reason": ""`; the schema makes the field
    required and an enum of `orphaned|review_overdue|manual|leaked` (no blank, not nullable), so a
    client generated from /api/schema/ rejects every application that is not suspended."""
    created = owner_client.post(
        APPS, _json({"name": "Billing", "scopes": ["orders:read"]}), "application/json"
    )
    served = created.json()["suspension_reason"]
    described = schema["components"]["schemas"]["M2MApp"]["properties"]["suspension_reason"]
    allowed: set = set()
    for part in described.get("allOf", [described]) + described.get("oneOf", []) + described.get("anyOf", []):
        if "$ref" in part:
            part = _ref(schema, part["$ref"])
        allowed |= set(part.get("enum", []))
        if part.get("nullable") or part.get("type") == "null":
            allowed.add(None)
    assert served in allowed, (served, described, allowed)


# --- rotation: the organisation's default overlap -----------------------------------------------
