"""The audit trail of a move names how it was made (`via`), as every other credential change does:
the calling credential over REST (security.md: "the audit trail names the key"), `api` for a
person's session, `cli` from the command line, `dashboard` from the key's page."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from credentials.api_keys.services import api_key_create
from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent
from tests.factories import ScopeFactory

pytestmark = pytest.mark.django_db

MOVE_EVENTS = ("tokens.m2m_app.created", "credentials.api_key.moved", "tokens.m2m_app.moved")


def _vias() -> dict[str, str | None]:
    return {e.action: (e.extra or {}).get("via") for e in AuditEvent.objects.filter(action__in=MOVE_EVENTS)}


def _rest_move(client: Client, key):
    response = client.post(
        f"/api/v1/orgs/acme/api-keys/{key.key_id}/move-to-m2m-app/", {}, content_type="application/json"
    )
    assert response.status_code == 201, response.content


def test_a_move_made_by_an_api_key_names_that_key(organization, owner, make_key):
    ScopeFactory(name="m2m_apps:manage")
    key, _ = make_key(name="exporter")
    caller, plaintext = api_key_create(
        organization=organization,
        name="automation",
        owner=owner,
        scopes=["api_keys:manage", "m2m_apps:manage", "orders:read"],
        actor=owner,
    )
    _rest_move(Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}"), key)
    assert _vias() == dict.fromkeys(MOVE_EVENTS, f"api_key:{caller.key_id}")


def test_a_move_over_rest_in_a_session_says_api(owner_client, make_key):
    key, _ = make_key(name="exporter")
    _rest_move(owner_client, key)
    assert _vias() == dict.fromkeys(MOVE_EVENTS, "api")


def test_a_move_from_the_command_line_says_cli(make_key):
    key, _ = make_key(name="exporter")
    out = StringIO()
    call_command("move_api_key_to_m2m_app", "--key-id", key.key_id, "--json", stdout=out)
    assert json.loads(out.getvalue())["status"] == "active"
    assert _vias() == dict.fromkeys(MOVE_EVENTS, "cli")


def test_a_move_from_the_dashboard_says_dashboard(owner_client, make_key):
    key, _ = make_key(name="exporter")
    response = owner_client.post(f"/orgs/acme/api-keys/{key.key_id}/move/", {"name": "exporter (M2M)"})
    assert response.status_code == 201, response.content.decode()[:500]
    assert _vias() == dict.fromkeys(MOVE_EVENTS, "dashboard")


def test_a_move_from_the_command_line_under_approval_says_cli_on_the_request_and_in_the_email(
    organization, owner, admin_user, make_key, mailoutbox, django_capture_on_commit_callbacks
):
    # The request is filed for the key's owner (its requester: four eyes), but nobody signed in
    # made it: the audit event and the approvers' e-mail say it came from the command line.
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, _ = make_key(name="exporter")
    mailoutbox.clear()
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("move_api_key_to_m2m_app", "--key-id", key.key_id, "--json", stdout=out)
    assert json.loads(out.getvalue())["status"] == "pending"
    requested = AuditEvent.objects.get(action="credentials.request.created")
    assert requested.actor == key.owner and requested.extra["via"] == "cli"
    asks = [m for m in mailoutbox if "Approval requested" in m.subject]
    assert asks and all("on the portal's command line for " + key.owner.email in m.body for m in asks)


def test_the_approvals_queue_and_the_api_say_an_operator_filed_a_cli_move(
    organization, owner, admin_user, make_key
):
    """Approvers decide on the queue: it showed the key's owner as the one who asked for a move
    they never made (only the audit event and the e-mail said the command line did)."""
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, _ = make_key(name="nightly")
    call_command("move_api_key_to_m2m_app", "--key-id", key.key_id, "--json", stdout=StringIO())
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get("/orgs/acme/approvals/").content.decode()
    assert f"An operator, on the command line, for {key.owner.email}" in page
    [request] = admin.get("/api/v1/orgs/acme/requests/").json()["results"]
    assert request["via"] == "cli" and request["requester"] == key.owner.email


def test_a_request_the_requester_made_says_nothing_of_an_operator(organization, owner, admin_user, make_key):
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, _ = make_key(name="nightly")
    owner_client = Client()
    owner_client.force_login(owner)
    response = owner_client.post(
        f"/orgs/acme/api-keys/{key.key_id}/move/", {"name": "nightly (M2M)", "justification": "switching"}
    )
    assert response.status_code == 302, response.content
    admin = Client()
    admin.force_login(admin_user)
    assert "An operator" not in admin.get("/orgs/acme/approvals/").content.decode()
    [request] = admin.get("/api/v1/orgs/acme/requests/").json()["results"]
    assert request["via"] == ""
