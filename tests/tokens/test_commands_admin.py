"""CLI commands and the admin: create_m2m_app, rotate_signing_key, the rotate action, resource-server flag."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory, enrol_totp
from tests.tokens.conftest import AppCredentials, request_token
from tokens.models import M2MApplication, SigningKey

pytestmark = pytest.mark.django_db


def test_create_m2m_app_json(owner, scopes, client):
    out = io.StringIO()
    call_command(
        "create_m2m_app", "--org", "acme", "--name", "Worker", "--owner", owner.email,
        "--scopes", "orders:read billing:read", "--json", stdout=out,
    )  # fmt: skip
    result = json.loads(out.getvalue())
    assert {"id", "client_id", "client_secret"} <= set(result)
    application = M2MApplication.objects.get(pk=result["id"])
    assert application.client_id == result["client_id"]
    assert sorted(application.allowed_scopes.values_list("name", flat=True)) == [
        "billing:read",
        "orders:read",
    ]
    creds = AppCredentials(application, result["client_id"], result["client_secret"])
    response = request_token(client, creds)
    assert json.loads(response.content)["scope"] == "billing:read orders:read"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--org", "nope", "--name", "x", "--owner", "owner@acme.test"], "organisation"),
        (["--org", "acme", "--name", "x", "--owner", "nobody@x.test"], "user"),
        (
            ["--org", "acme", "--name", "x", "--owner", "owner@acme.test", "--scopes", "no:such"],
            "Unknown scope",
        ),
        (["--org", "acme", "--name", "x", "--owner", "owner@globex.test"], "member"),
    ],
)
def test_create_m2m_app_errors(owner, outsider, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_m2m_app", *args, stdout=io.StringIO())


def test_rotate_signing_key_command():
    call_command("rotate_signing_key", stdout=io.StringIO())
    out = io.StringIO()
    call_command("rotate_signing_key", "--algorithm", "ES256", stdout=out)
    active = SigningKey.objects.get(status="active")
    assert active.algorithm == "ES256" and active.kid in out.getvalue()
    assert SigningKey.objects.filter(status="retired").count() == 1


@pytest.fixture
def staff_client(db):
    client = Client()
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)  # staff use the admin only with a second factor
    client.force_login(staff)
    return client


def test_admin_rotate_action(staff_client):
    call_command("rotate_signing_key", stdout=io.StringIO())
    first = SigningKey.objects.get()
    response = staff_client.post(
        reverse("admin:tokens_signingkey_changelist"),
        {"action": "rotate_es256", "_selected_action": [first.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert SigningKey.objects.get(status="active").algorithm == "ES256"
    first.refresh_from_db()
    assert first.status == "retired" and first.publish_until is not None


def test_admin_marks_a_resource_server(staff_client, app):
    url = reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])
    page = staff_client.get(url)
    assert page.status_code == 200
    data = {
        "name": app.application.name,
        "description": "",
        "owner": app.application.owner_id,
        "allowed_scopes": [s.pk for s in app.application.allowed_scopes.all()],
        "allowed_audiences": "[]",
        "token_lifetime": "900",
        "is_resource_server": "on",
        "secrets-TOTAL_FORMS": "1",
        "secrets-INITIAL_FORMS": "1",
        "secrets-MIN_NUM_FORMS": "0",
        "secrets-MAX_NUM_FORMS": "1000",
        "secrets-0-id": app.application.secrets.get().pk,
        "secrets-0-application": app.application.pk,
        "public_keys-TOTAL_FORMS": "0",
        "public_keys-INITIAL_FORMS": "0",
        "public_keys-MIN_NUM_FORMS": "0",
        "public_keys-MAX_NUM_FORMS": "1000",
    }
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    app.application.refresh_from_db()
    assert app.application.is_resource_server is True


def test_create_m2m_app_with_a_token_quota(owner, scopes):
    out = io.StringIO()
    call_command(
        "create_m2m_app", "--org", "acme", "--name", "Quota", "--owner", owner.email,
        "--scopes", "orders:read", "--tokens-per-hour", "10", "--tokens-per-day", "100",
        "--token-quota-mode", "log_only", "--json", stdout=out,
    )  # fmt: skip
    assert json.loads(out.getvalue())["token_quota"] == {"per_hour": 10, "per_day": 100, "mode": "log_only"}
    with pytest.raises(CommandError, match="per_hour"):
        call_command(
            "create_m2m_app", "--org", "acme", "--name", "Bad", "--owner", owner.email,
            "--tokens-per-hour", "0", stdout=io.StringIO(),
        )  # fmt: skip
