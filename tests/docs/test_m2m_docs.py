"""docs/m2m.md (the REST walk-through, runtime policy at the OAuth endpoints, quotas, commands)."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import call_command
from django.test import Client

from tests.factories import ScopeFactory, make_api_key
from tests.support.pem import pem_pair
from tests.tokens.conftest import basic

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(organization, owner, scopes):
    ScopeFactory(name="m2m_apps:manage")
    _row, plaintext = make_api_key(
        organization, owner, name="provisioner", scopes=["m2m_apps:manage", "orders:read"]
    )
    return plaintext


def _post(client, url, data=None):
    return client.post(url, data or {}, content_type="application/json")


def test_the_rest_walk_through(organization, key):
    """docs/m2m.md:806-842, step by step."""
    c = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    base = f"/api/v1/orgs/{organization.slug}/m2m-apps/"
    created = _post(c, base, {"name": "Billing", "scopes": ["orders:read"], "token_lifetime": 600})
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    body = created.json()
    assert body["client_secret"].startswith("ips_") and body["status"] == "active"
    assert body["scopes"] == ["orders:read"] and body["secrets"][0]["hint"].startswith("ips_")
    app_id, first_secret = body["id"], body["secrets"][0]["id"]
    # documented members of an application (docs/m2m.md:780-785)
    for name in (
        "id",
        "client_id",
        "name",
        "description",
        "owner",
        "created_by",
        "scopes",
        "audiences",
        "token_lifetime",
        "token_endpoint_auth_method",
        "status",
        "created_at",
        "updated_at",
        "last_used_at",
        "secrets",
        "public_keys",
    ):
        assert name in body, name
    assert set(body["secrets"][0]) == {
        "id",
        "hint",
        "status",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    }

    found = c.get(base, {"search": "Billing", "status": "active"}).json()
    assert [a["id"] for a in found["results"]] == [app_id] and "client_secret" not in found["results"][0]
    assert c.get(base, {"status": "nonsense"}).json()["results"] == []
    assert c.get(base, {"auth_method": "nonsense"}).json()["results"] == []

    patched = c.patch(
        f"{base}{app_id}/",
        {"name": "Billing (prod)", "scopes": ["orders:read"]},
        content_type="application/json",
    )
    assert patched.status_code == 200 and patched.json()["name"] == "Billing (prod)"
    fixed = c.patch(f"{base}{app_id}/", {"token_lifetime": 900}, content_type="application/json")
    assert fixed.status_code == 400 and fixed.json()["token_lifetime"] == [
        "This field cannot be changed here."
    ]

    rotated = _post(c, f"{base}{app_id}/rotate-secret/", {"overlap_hours": 2})
    assert rotated.status_code == 201
    assert set(rotated.json()) == {"client_id", "client_secret", "secret", "application"}

    assert _post(c, f"{base}{app_id}/secrets/{first_secret}/revoke/").status_code == 200
    revoked = _post(c, f"{base}{app_id}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"

    # private_key_jwt
    _private, public = pem_pair()
    ledger = _post(
        c, base, {"name": "Ledger", "token_endpoint_auth_method": "private_key_jwt", "public_key": public}
    )
    assert ledger.status_code == 201 and "client_secret" not in ledger.json()
    ledger_id = ledger.json()["id"]
    _private2, public2 = pem_pair()
    added = _post(c, f"{base}{ledger_id}/public-keys/", {"public_key": public2, "overlap_hours": 24})
    assert added.status_code == 201
    assert set(added.json()) == {
        "id",
        "kid",
        "alg",
        "jwk",
        "status",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    }
    assert _post(c, f"{base}{ledger_id}/public-keys/{added.json()['id']}/revoke/").status_code == 200
    # A state that does not allow the action: 409 with a code (docs/m2m.md:800-801)
    wrong = _post(c, f"{base}{ledger_id}/rotate-secret/")
    assert wrong.status_code == 409 and wrong.json()["code"] == "wrong_auth_method"


def test_token_lifetime_bounds_and_default(organization, key):
    c = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    base = f"/api/v1/orgs/{organization.slug}/m2m-apps/"
    assert _post(c, base, {"name": "a"}).json()["token_lifetime"] == 900
    assert _post(c, base, {"name": "b", "token_lifetime": 299}).status_code == 400
    assert _post(c, base, {"name": "c", "token_lifetime": 86401}).status_code == 400


@pytest.mark.usefixtures("rate_clock")
def test_runtime_policy_at_the_token_endpoint(make_app, scopes):
    denied = make_app(allowed_ips=["203.0.113.0/24"], name="denied")
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(denied.client_id, denied.client_secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    limited = make_app(rate_limit={"requests": 1, "per_seconds": 60}, name="limited")
    auth = basic(limited.client_id, limited.client_secret)
    first = Client().post("/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth)
    assert first.status_code == 200 and first["RateLimit-Policy"] == '"default";q=1;w=60'
    second = Client().post("/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth)
    assert second.status_code == 429 and second.json()["error"] == "slow_down"
    assert int(second["Retry-After"]) > 0 and re.fullmatch(r'"default";r=0;t=\d+', second["RateLimit"])


@pytest.mark.usefixtures("rate_clock")
def test_token_quota_enforced_and_patch_rules(organization, key, scopes):
    c = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    base = f"/api/v1/orgs/{organization.slug}/m2m-apps/"
    created = _post(
        c, base, {"name": "q", "scopes": ["orders:read"], "token_quota": {"per_hour": 1, "mode": "enforce"}}
    )
    assert created.status_code == 201, created.content
    body = created.json()
    auth = basic(body["client_id"], body["client_secret"])
    assert (
        Client()
        .post("/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth)
        .status_code
        == 200
    )
    over = Client().post("/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth)
    assert over.status_code == 429 and over.json()["error"] == "slow_down" and int(over["Retry-After"]) > 0
    bad = c.patch(
        f"{base}{body['id']}/",
        {"token_quota": {"per_hour": 10, "per_day": 5}},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "token_quota" in bad.json()
    cleared = c.patch(f"{base}{body['id']}/", {"token_quota": None}, content_type="application/json")
    assert cleared.status_code == 200 and cleared.json()["token_quota"]["per_hour"] is None


def test_create_m2m_app_json_for_a_public_key(organization, owner, scopes, tmp_path):
    _private, public = pem_pair()
    path = tmp_path / "public.pem"
    path.write_text(public)
    out = io.StringIO()
    call_command(
        "create_m2m_app",
        "--org",
        organization.slug,
        "--name",
        "Billing",
        "--owner",
        owner.email,
        "--scopes",
        "orders:read",
        "--public-key-file",
        str(path),
        "--json",
        stdout=out,
    )
    body = json.loads(out.getvalue())
    assert body["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in body
    assert body["public_key_alg"] == "ES256" and body["public_key_kid"]


def test_create_m2m_app_json_pinned_members(organization, owner, scopes):
    out = io.StringIO()
    call_command(
        "create_m2m_app",
        "--org",
        organization.slug,
        "--name",
        "Billing",
        "--owner",
        owner.email,
        "--scopes",
        "orders:read",
        "--allowed-ips",
        "203.0.113.0/24",
        "--rate-limit",
        "100/60",
        "--tokens-per-hour",
        "10",
        "--tokens-per-day",
        "100",
        "--token-quota-mode",
        "log_only",
        "--json",
        stdout=out,
    )
    body = json.loads(out.getvalue())
    assert {"id", "client_id", "client_secret"} <= set(body)
    assert body["token_quota"] == {"per_hour": 10, "per_day": 100, "mode": "log_only"}


def test_add_federated_identity_as_documented(make_app, scopes):
    """docs/m2m.md:570-575, run as written."""
    app = make_app()
    out = io.StringIO()
    call_command(
        "add_federated_identity",
        "--client-id",
        app.client_id,
        "--issuer",
        "https://token.actions.githubusercontent.com",
        "--preset",
        "github_actions",
        "--subject",
        "repo:acme/billing:ref:refs/heads/main",
        "--condition",
        "repository=acme/billing",
        "--condition",
        "job_workflow_ref=acme/billing/.github/workflows/deploy.yml@refs/heads/main",
        "--max-token-age",
        "900",
        "--json",
        stdout=out,
    )
    body = json.loads(out.getvalue())
    assert body["id"].startswith("fid_") and body["client_id"] == app.client_id
    assert body["status"] == "active" and body["issuer"] == "https://token.actions.githubusercontent.com"
