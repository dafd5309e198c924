"""Runtime policy on M2M applications: the IP allowlist and the rate limit at the OAuth endpoints."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from credentials.governance.edits import credential_policy_set
from portal.models import AuditEvent
from tests.tokens.conftest import basic, request_token
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db

INSIDE, OUTSIDE = "203.0.113.7", "198.51.100.9"


def token_from(creds, ip):
    return request_token(Client(REMOTE_ADDR=ip), creds)


def test_token_from_a_refused_address_is_400_unauthorized_client(make_app):
    creds = make_app(allowed_ips=["203.0.113.0/24"])
    assert token_from(creds, INSIDE).status_code == 200
    refused = token_from(creds, OUTSIDE)
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client" and "error_description" in refused.json()
    assert refused["Cache-Control"] == "no-store"


def test_a_wrong_secret_from_a_refused_address_is_still_invalid_client(make_app):
    creds = make_app(allowed_ips=[INSIDE])
    response = request_token(Client(REMOTE_ADDR=OUTSIDE), creds, secret="ips_wrong")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


@pytest.mark.usefixtures("rate_clock")
def test_token_over_the_limit_is_429_with_retry_after_and_ratelimit_headers(make_app):
    creds = make_app(rate_limit={"requests": 2, "per_seconds": 60})
    first = token_from(creds, INSIDE)
    assert first.status_code == 200
    assert first["RateLimit-Policy"] == '"default";q=2;w=60' and first["RateLimit"].startswith(
        '"default";r=1;t='
    )
    assert token_from(creds, OUTSIDE).status_code == 200  # shared by every client of the application
    third = token_from(creds, INSIDE)
    assert third.status_code == 429 and third.json()["error"] == "slow_down"
    assert 1 <= int(third["Retry-After"]) <= 60
    assert third["RateLimit"] == f'"default";r=0;t={third["Retry-After"]}'


def test_introspection_applies_the_calling_clients_allowlist(make_app):
    caller = make_app(allowed_ips=[INSIDE], name="Gateway")
    token = token_from(caller, INSIDE).json()["access_token"]
    auth = basic(caller.client_id, caller.client_secret)
    ok = Client(REMOTE_ADDR=INSIDE).post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=auth)
    assert ok.status_code == 200 and ok.json()["active"] is True
    refused = Client(REMOTE_ADDR=OUTSIDE).post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=auth)
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"


def test_a_policy_change_takes_effect_at_once_and_is_audited(make_app, owner):
    creds = make_app()
    assert token_from(creds, OUTSIDE).status_code == 200
    credential_policy_set(credential=creds.application, actor=owner, allowed_ips=[INSIDE])
    assert token_from(creds, OUTSIDE).status_code == 400
    assert AuditEvent.objects.filter(action="tokens.m2m_app.policy_changed").count() == 1


def test_create_m2m_app_takes_allowed_ips_and_rate_limit(owner, scopes):
    out = StringIO()
    call_command(
        "create_m2m_app",
        "--org=acme",
        "--name=cli",
        f"--owner={owner.email}",
        "--allowed-ips=203.0.113.0/24",
        "--rate-limit=10/1",
        "--json",
        stdout=out,
    )
    body = json.loads(out.getvalue())
    assert body["allowed_ips"] == ["203.0.113.0/24"] and body["rate_limit"] == {
        "requests": 10,
        "per_seconds": 1,
    }
    app = M2MApplication.objects.get(client_id=body["client_id"])
    assert app.allowed_ips == ["203.0.113.0/24"]


@pytest.mark.parametrize("flag", ["--allowed-ips=::1/0", "--rate-limit=5/0", "--rate-limit=5/86401"])
def test_create_m2m_app_refuses_bad_policy_flags(owner, scopes, flag):
    with pytest.raises(CommandError):
        call_command("create_m2m_app", "--org=acme", "--name=cli", f"--owner={owner.email}", flag)
    assert not M2MApplication.objects.exists()


def test_dashboard_create_form_and_detail_page_policy(owner_client, owner, scopes, catalogue):
    from django.urls import reverse

    from tests.tokens.clients.test_dashboard import _create

    bad = _create(owner_client, scopes, owner=owner.pk, allowed_ips="::1/0", rate_limit="5/0")
    assert bad.status_code == 400 and not M2MApplication.objects.exists()
    response = _create(owner_client, scopes, owner=owner.pk, allowed_ips=INSIDE, rate_limit="10/60")
    assert response.status_code == 201
    app = M2MApplication.objects.get()
    assert app.allowed_ips == [f"{INSIDE}/32"] and app.rate_limit == {"requests": 10, "per_seconds": 60}
    detail = owner_client.get(reverse("org-app-detail", args=["acme", app.pk])).content.decode()
    assert "Runtime policy" in detail and f"{INSIDE}/32" in detail and "10 requests per 60 s" in detail
    owner_client.post(reverse("org-app-policy", args=["acme", app.pk]), {"policy-allowed_ips": ""})
    app.refresh_from_db()
    assert app.allowed_ips == [] and app.rate_limit is None
    assert AuditEvent.objects.filter(action="tokens.m2m_app.policy_changed").count() == 1
