"""CLI commands and the admin: create_m2m_app, rotate_signing_key, the rotate action, resource-server flag."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent
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


def _admin_change(staff_client, application, *, follow: bool = False, **overrides):
    """Post the application's admin form as it stands, with `overrides`; return the response."""
    url = reverse("admin:tokens_m2mapplication_change", args=[application.pk])
    assert staff_client.get(url).status_code == 200
    data = {
        "name": application.name,
        "description": application.description,
        "owner": application.owner_id,
        "allowed_scopes": [s.pk for s in application.allowed_scopes.all()],
        "allowed_audiences": json.dumps(application.allowed_audiences),
        "token_lifetime": str(application.token_lifetime),
        "secrets-TOTAL_FORMS": "1",
        "secrets-INITIAL_FORMS": "1",
        "secrets-MIN_NUM_FORMS": "0",
        "secrets-MAX_NUM_FORMS": "1000",
        "secrets-0-id": application.secrets.get().pk,
        "secrets-0-application": application.pk,
        "public_keys-TOTAL_FORMS": "0",
        "public_keys-INITIAL_FORMS": "0",
        "public_keys-MIN_NUM_FORMS": "0",
        "public_keys-MAX_NUM_FORMS": "1000",
        **overrides,
    }
    return staff_client.post(url, data, follow=follow)


def test_admin_marks_a_resource_server(staff_client, app):
    response = _admin_change(staff_client, app.application, is_resource_server="on")
    assert response.status_code == 302, response.content.decode()[:2000]
    app.application.refresh_from_db()
    assert app.application.is_resource_server is True


def _events_since(last: int) -> dict[str, dict]:
    return {e.action: e.extra for e in AuditEvent.objects.filter(pk__gt=last)}


def test_staff_edits_in_the_admin_are_audited_and_checked(staff_client, app, scopes, organization, owner):
    """Every change to a credential writes an audit event (BRIEF.md), staff's in the admin too."""
    application = app.application
    original = application.name
    last = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    wider = [*(s.pk for s in application.allowed_scopes.all()), scopes["billing:read"].pk]
    response = _admin_change(
        staff_client, application, name="Renamed by staff", token_lifetime="3600", allowed_scopes=wider
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    application.refresh_from_db()
    assert application.name == "Renamed by staff" and application.token_lifetime == 3600
    assert "billing:read" in application.allowed_scopes.values_list("name", flat=True)
    events = _events_since(last)
    assert events["tokens.m2m_app.updated"]["name"] == {"from": original, "to": "Renamed by staff"}
    assert events["tokens.m2m_app.updated"]["token_lifetime"]["to"] == 3600
    assert "billing:read" in events["tokens.m2m_app.scopes_changed"]["to"]
    assert all(extra.get("via") == "admin" for extra in events.values())

    # A widening the organisation must approve is refused here as in the dashboard, nothing saved.
    policy_update(organization=organization, actor=owner, approve_scope_increases=True)
    last = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    every = [s.pk for s in scopes.values()]
    response = _admin_change(staff_client, application, name="Wider", allowed_scopes=every, follow=True)
    assert b"requires an approval" in response.content
    application.refresh_from_db()
    assert application.name == "Renamed by staff"
    assert sorted(application.allowed_scopes.values_list("name", flat=True)) != sorted(scopes)
    assert not AuditEvent.objects.filter(pk__gt=last, action__startswith="tokens.m2m_app.").exists()


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
