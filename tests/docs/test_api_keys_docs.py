"""docs/api-keys.md, checked against what the endpoints and commands really do."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from portal.models import AuditEvent
from tests.factories import ScopeFactory, make_api_key
from tests.tokens.conftest import basic
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db

DOCS = Path(settings.BASE_DIR) / "docs" / "api-keys.md"


def _manager_key(organization, owner, *extra):
    ScopeFactory(name="m2m_apps:manage")
    row, key = make_api_key(
        organization,
        owner,
        name="manager",
        scopes=["orders:read", "api_keys:manage", "api_keys:verify", "m2m_apps:manage", *extra],
    )
    return row, key


def _bearer(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


# --- Using a key ------------------------------------------------------------------------------


def test_whoami_answer_has_the_documented_fields(organization, owner, scopes):
    row, key = make_api_key(organization, owner, name="billing export", scopes=["orders:read"])
    for client in (_bearer(key), Client(HTTP_X_API_KEY=key)):
        response = client.get("/api/v1/whoami")
        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store"
        body = response.json()
        # docs/api-keys.md:117-119
        assert set(body) == {
            "credential_type",
            "credential_id",
            "organization",
            "scopes",
            "owner",
            "expires_at",
            "environment",
            "name",
        }
        assert body["credential_type"] == "api_key"
        assert body["credential_id"] == row.key_id


def test_a_key_in_the_query_string_is_refused(organization, owner, scopes):
    _row, key = make_api_key(organization, owner, scopes=["orders:read"])
    assert Client().get("/api/v1/whoami", {"api_key": key}).status_code == 401
    assert _bearer(key).get("/api/v1/whoami", {"x": key}).status_code == 401  # a whole key, any name
    # "A short ipk_… value, such as a key's display prefix in a search, is not a key and passes."
    assert _bearer(key).get("/api/v1/whoami", {"x": "ipk_live_whatever"}).status_code == 200


def test_every_unusable_key_gets_the_documented_401(organization, owner, scopes):
    row, key = make_api_key(organization, owner, scopes=["orders:read"])
    for presented in ("nonsense", key[:-1] + ("A" if key[-1] != "A" else "B"), "ipk_live_" + "a" * 50):
        response = _bearer(presented).get("/api/v1/whoami")
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
        assert response.json() == {
            "detail": "The credential is missing, malformed, unknown, expired or revoked.",
            "code": "authentication_failed",
        }


def test_a_valid_key_without_the_scope_gets_403(organization, owner, scopes):
    _row, key = make_api_key(organization, owner, scopes=["orders:read"])
    response = _bearer(key).post("/api/v1/keys/verify", {"key": key}, content_type="application/json")
    assert response.status_code == 403


# --- Verifying a key from another service -------------------------------------------------------


def test_verify_answers_the_documented_fields(organization, owner, member, scopes):
    _row, verifier = make_api_key(organization, owner, name="verifier", scopes=["api_keys:verify"])
    row, caller = make_api_key(organization, member, name="billing export", scopes=["orders:read"])
    response = _bearer(verifier).post("/api/v1/keys/verify", {"key": caller}, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "valid",
        "organization",
        "key_id",
        "name",
        "owner",
        "scopes",
        "environment",
        "expires_at",
    }
    assert body["key_id"] == row.key_id


def test_verify_python_snippet_runs_against_a_live_server(live_server, organization, owner, member, scopes):
    _row, verifier = make_api_key(organization, owner, name="verifier", scopes=["api_keys:verify"])
    _row, caller = make_api_key(organization, member, name="billing export", scopes=["orders:read"])
    code = re.search(r"```python\n(import requests\n\nPORTAL = .*?)```", DOCS.read_text(), re.S).group(1)
    code = code.replace("https://portal.example.com", live_server.url).replace('"ipk_live_…"', repr(verifier))
    namespace: dict = {}
    exec(compile(code, "docs/api-keys.md", "exec"), namespace)  # noqa: S102 (our own documentation)
    assert namespace["check_api_key"](caller, "orders:read")["valid"] is True
    assert namespace["check_api_key"](caller, "orders:write") is None
    assert namespace["check_api_key"](caller[:-2] + "zz", "orders:read") is None


@pytest.mark.usefixtures("rate_clock")
def test_verify_rate_limited_answer_carries_retry_after(organization, owner, member, scopes):
    _row, verifier = make_api_key(organization, owner, name="verifier", scopes=["api_keys:verify"])
    _row, caller = make_api_key(
        organization, member, scopes=["orders:read"], rate_limit={"requests": 1, "per_seconds": 60}
    )
    client = _bearer(verifier)
    assert client.post("/api/v1/keys/verify", {"key": caller}, content_type="application/json").json()[
        "valid"
    ]
    body = client.post("/api/v1/keys/verify", {"key": caller}, content_type="application/json").json()
    assert body["valid"] is False and body["code"] == "rate_limited"
    assert isinstance(body["retry_after"], int) and body["retry_after"] > 0


def test_verify_ip_denied_with_client_ip(organization, owner, member, scopes):
    _row, verifier = make_api_key(organization, owner, name="verifier", scopes=["api_keys:verify"])
    _row, caller = make_api_key(organization, member, scopes=["orders:read"], allowed_ips=["203.0.113.0/24"])
    client = _bearer(verifier)
    body = client.post(
        "/api/v1/keys/verify", {"key": caller, "client_ip": "198.51.100.7"}, content_type="application/json"
    ).json()
    assert body == {"valid": False, "code": "ip_denied"}
    # Without client_ip: not checked.
    assert client.post("/api/v1/keys/verify", {"key": caller}, content_type="application/json").json()[
        "valid"
    ]


# --- Runtime policy ---------------------------------------------------------------------------


def test_ip_denied_body_is_the_documented_one(organization, owner, scopes):
    _row, key = make_api_key(organization, owner, scopes=["orders:read"], allowed_ips=["203.0.113.0/24"])
    response = _bearer(key).get("/api/v1/whoami")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "This credential may not be used from this address.",
        "code": "ip_denied",
    }


@pytest.mark.usefixtures("rate_clock")
def test_rate_limited_answer_and_headers(organization, owner, scopes):
    _row, key = make_api_key(
        organization, owner, scopes=["orders:read"], rate_limit={"requests": 1, "per_seconds": 60}
    )
    client = _bearer(key)
    first = client.get("/api/v1/whoami")
    assert first.status_code == 200
    assert first["RateLimit-Policy"] == '"default";q=1;w=60'
    assert re.fullmatch(r'"default";r=0;t=\d+', first["RateLimit"])
    second = client.get("/api/v1/whoami")
    assert second.status_code == 429
    assert second.json()["code"] == "rate_limited"
    assert int(second["Retry-After"]) > 0
    assert second["RateLimit-Policy"] == '"default";q=1;w=60'


# --- Managing keys over REST ------------------------------------------------------------------


def test_rest_rotate_revoke_and_patch_as_documented(organization, owner, scopes):
    _row, manager = _manager_key(organization, owner)
    client = _bearer(manager)
    base = f"/api/v1/orgs/{organization.slug}/api-keys/"
    created = client.post(base, {"name": "x", "scopes": ["orders:read"]}, content_type="application/json")
    assert created.status_code == 201 and created.json()["key"].startswith("ipk_live_")
    key_id = created.json()["id"]
    # PATCH of a field the key shows but that cannot change: 400 on that field (docs/api-keys.md:275-277)
    refused = client.patch(f"{base}{key_id}/", {"environment": "test"}, content_type="application/json")
    assert refused.status_code == 400 and "environment" in refused.json()
    # overlap_hours 0-168
    assert (
        client.post(
            f"{base}{key_id}/rotate/", {"overlap_hours": 169}, content_type="application/json"
        ).status_code
        == 400
    )
    rotated = client.post(f"{base}{key_id}/rotate/", {"overlap_hours": 168}, content_type="application/json")
    assert rotated.status_code == 201
    successor = rotated.json()["successor"]["id"]
    revoked = client.post(f"{base}{successor}/revoke/", {"reason": "done"}, content_type="application/json")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"


def test_cli_create_api_key_json_has_the_documented_members(organization, owner, scopes):
    out = io.StringIO()
    call_command(
        "create_api_key",
        "--org",
        organization.slug,
        "--name",
        "CI",
        "--owner",
        owner.email,
        "--scopes",
        "orders:read",
        "--allowed-ips",
        "10.0.0.0/8",
        "--rate-limit",
        "10/60",
        "--json",
        stdout=out,
    )
    body = json.loads(out.getvalue())
    # docs/api-keys.md:285-286
    assert set(body) == {
        "id",
        "key",
        "name",
        "organization",
        "owner",
        "scopes",
        "environment",
        "expires_at",
        "allowed_ips",
        "rate_limit",
    }


# --- Moving a key to an M2M application ---------------------------------------------------------


def test_rest_move_answers_the_documented_members(organization, owner, scopes):
    _row, manager = _manager_key(organization, owner)
    row, _key = make_api_key(organization, owner, name="to move", scopes=["orders:read"])
    client = _bearer(manager)
    url = f"/api/v1/orgs/{organization.slug}/api-keys/{row.key_id}/move-to-m2m-app/"
    response = client.post(url, {}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    # docs/api-keys.md:304-305
    assert set(response.json()) == {
        "id",
        "client_id",
        "client_secret",
        "status",
        "key_id",
        "environment",
        "scopes",
    }
    again = client.post(url, {}, content_type="application/json")
    assert again.status_code == 409 and again.json()["code"] == "moved"


def test_cli_move_json_has_the_documented_members(organization, owner, scopes):
    row, _key = make_api_key(organization, owner, name="to move", scopes=["orders:read"])
    out = io.StringIO()
    call_command("move_api_key_to_m2m_app", "--key-id", row.key_id, "--json", stdout=out)
    body = json.loads(out.getvalue())
    # docs/api-keys.md:315-316
    assert set(body) == {
        "id",
        "client_id",
        "client_secret",
        "status",
        "key_id",
        "organization",
        "owner",
        "scopes",
        "environment",
    }


def test_audit_via_values(organization, owner, scopes):
    """docs/api-keys.md:106-108: `via` = dashboard, api, api_key:<key id>, cli or admin."""

    row, manager = _manager_key(organization, owner)
    created = _bearer(manager).post(
        f"/api/v1/orgs/{organization.slug}/api-keys/",
        {"name": "x", "scopes": ["orders:read"]},
        content_type="application/json",
    )
    assert created.status_code == 201
    event = AuditEvent.objects.filter(action="credentials.api_key.created").order_by("-id").first()
    assert event.extra["via"] == f"api_key:{row.key_id}", event.extra
    call_command(
        "create_api_key",
        "--org",
        organization.slug,
        "--name",
        "c",
        "--owner",
        owner.email,
        "--json",
        stdout=io.StringIO(),
    )
    cli = AuditEvent.objects.filter(action="credentials.api_key.created").order_by("-id").first()
    assert cli.extra["via"] == "cli", cli.extra


@pytest.mark.usefixtures("rate_clock")
def test_another_organisations_key_spends_nothing(organization, other_organization, owner, outsider, scopes):
    """docs/api-keys.md:140-142."""
    _row, verifier = make_api_key(organization, owner, name="verifier", scopes=["api_keys:verify"])
    foreign, foreign_key = make_api_key(
        other_organization, outsider, scopes=["orders:read"], rate_limit={"requests": 1, "per_seconds": 60}
    )
    body = (
        _bearer(verifier)
        .post("/api/v1/keys/verify", {"key": foreign_key}, content_type="application/json")
        .json()
    )
    assert body == {"valid": False, "code": "not_found"}
    foreign.refresh_from_db()
    assert foreign.last_used_at is None
    assert _bearer(foreign_key).get("/api/v1/whoami").status_code == 200  # its one request is still there


@pytest.mark.usefixtures("rate_clock")
def test_malformed_keys_do_not_count_toward_the_verifiers_failure_limit(
    settings, organization, owner, scopes
):
    """docs/api-keys.md:146-147."""
    settings.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 2
    _row, verifier = make_api_key(organization, owner, name="verifier", scopes=["api_keys:verify"])
    client = _bearer(verifier)
    for _ in range(4):
        response = client.post(
            "/api/v1/keys/verify", {"key": "ipk_live_" + "a" * 50}, content_type="application/json"
        )
        assert response.status_code == 200 and response.json()["code"] == "malformed"


def test_a_resource_servers_token_verifies_every_organisations_keys(
    organization, other_organization, owner, outsider, scopes, make_app
):
    """docs/api-keys.md:142-144."""

    platform = make_app(scopes=["api_keys:verify"], name="platform")
    M2MApplication.objects.filter(pk=platform.application.pk).update(is_resource_server=True)
    token = (
        Client()
        .post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic(platform.client_id, platform.client_secret),
        )
        .json()["access_token"]
    )
    _row, foreign_key = make_api_key(other_organization, outsider, scopes=["orders:read"])
    body = (
        _bearer(token)
        .post("/api/v1/keys/verify", {"key": foreign_key}, content_type="application/json")
        .json()
    )
    assert body["valid"] is True and body["organization"] == other_organization.slug
