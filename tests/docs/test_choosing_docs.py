"""docs/choosing.md: the policy API, set_api_key_policy, api_key_cutover --json."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client

from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def test_policy_api_answer(organization, owner, scopes):
    _row, key = make_api_key(organization, owner, scopes=["inventory:read"])
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get(
        f"/api/v1/orgs/{organization.slug}/policy/api-keys/"
    )
    assert response.status_code == 200
    assert set(response.json()) == {
        "new_live_api_keys",
        "new_live_api_keys_max_days",
        "new_test_api_keys",
        "new_test_api_keys_max_days",
        "flagged_api_keys",
    }


def test_forbidden_and_too_long_codes(organization, owner, scopes):
    _row, key = make_api_key(organization, owner, scopes=["api_keys:manage", "orders:read"])
    c = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    call_command(
        "set_api_key_policy",
        "--org",
        organization.slug,
        "--live",
        "forbidden",
        "--test",
        "expiring",
        "--test-max-days",
        "30",
        stdout=io.StringIO(),
    )
    base = f"/api/v1/orgs/{organization.slug}/api-keys/"
    refused = c.post(base, {"name": "x", "scopes": ["orders:read"]}, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["code"] == "api_keys_not_allowed", refused.content
    too_long = c.post(
        base, {"name": "x", "environment": "test", "expires_in_days": 60}, content_type="application/json"
    )
    assert too_long.status_code == 400, too_long.content
    assert too_long.json()["code"] == "api_key_expiry_too_long" and "expires_at" in too_long.json(), (
        too_long.json()
    )


def test_set_api_key_policy_json_names_the_rules_as_the_rest_api_does(organization, scopes):
    """choosing.md:55-64 documents the REST names; the CLI's --json names the same rules differently."""
    out = io.StringIO()
    call_command("set_api_key_policy", "--org", organization.slug, "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert {"new_live_api_keys", "new_test_api_keys"} <= set(body)


def test_api_key_cutover_json(organization, owner, scopes):
    row, _key = make_api_key(organization, owner, scopes=["orders:read"])
    call_command("move_api_key_to_m2m_app", "--key-id", row.key_id, "--json", stdout=io.StringIO())
    out = io.StringIO()
    call_command(
        "api_key_cutover", "--key-id", row.key_id, "--quiet-hours", "1", "--auto-revoke", "--json", stdout=out
    )
    body = json.loads(out.getvalue())
    assert {
        "used_last_hour",
        "used_last_day",
        "last_use",
        "quiet_hours",
        "auto_revoke",
        "revocable_at",
        "ready",
        "detail",
    } <= set(body), body
