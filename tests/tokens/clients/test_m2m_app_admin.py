"""The M2M application admin: no deletion, step-up before any widening, bad JSON a form error."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from credentials.governance.models import RequestState
from portal.models import AuditEvent
from tests.factories import ResourceServerFactory
from tests.portal.test_account_security import make_stale
from tests.support.admin_forms import change_form_data, is_step_up_redirect
from tests.tokens.conftest import request_token
from tokens.clients.services import m2m_app_request
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


def test_an_application_cannot_be_deleted_in_the_admin(super_client, organization, owner, member, scopes):
    """Revoke instead, as for API keys and federated identities: a deletion is unaudited, and a pending
    application's request could no longer be decided (a 500)."""
    application, request = m2m_app_request(
        requester=member,
        justification="needed",
        organization=organization,
        name="Pending app",
        owner=member,
        scopes=["orders:read"],
    )
    response = super_client.post(
        reverse("admin:tokens_m2mapplication_delete", args=[application.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert M2MApplication.objects.filter(pk=application.pk).exists()
    decided = super_client.post(
        reverse("admin:credentials_credentialrequest_changelist"),
        {"action": "approve_selected", "_selected_action": [request.pk], "apply": "1", "comment": "ok"},
    )
    request.refresh_from_db()
    assert decided.status_code == 302 and request.state == RequestState.APPROVED


def test_widening_an_applications_scopes_asks_for_step_up(super_client, make_app, scopes):
    """BRIEF (authority rule): scope widening needs a recent step-up, as an owner change does."""
    app = make_app(scopes=["orders:read"])
    url = reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])
    data = change_form_data(super_client.get(url))
    make_stale(super_client)
    response = super_client.post(url, {**data, "allowed_scopes": [s.pk for s in scopes.values()]})
    held = sorted(app.application.allowed_scopes.values_list("name", flat=True))
    assert is_step_up_redirect(response), response.status_code
    assert held == ["orders:read"], held


def test_adding_an_audience_asks_for_step_up(super_client, make_app):
    api = ResourceServerFactory(identifier="https://orders.example.com")
    app = make_app()
    url = reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])
    data = change_form_data(super_client.get(url))
    make_stale(super_client)
    response = super_client.post(url, {**data, "allowed_audiences": json.dumps([api.identifier])})
    app.application.refresh_from_db()
    assert is_step_up_redirect(response), response.status_code
    assert app.application.allowed_audiences == []


def test_an_audience_it_holds_written_with_spaces_needs_no_step_up(super_client, make_app):
    # Stored as checked (stripped): " https://orders…" is the audience it holds, not a new one.
    api = ResourceServerFactory(identifier="https://orders.example.com")
    app = make_app()
    app.application.allowed_audiences = [api.identifier]
    app.application.save(update_fields=["allowed_audiences"])
    url = reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])
    data = change_form_data(super_client.get(url))
    make_stale(super_client)
    response = super_client.post(
        url, {**data, "name": "renamed", "allowed_audiences": json.dumps([f" {api.identifier} "])}
    )
    app.application.refresh_from_db()
    assert response.status_code == 302 and not is_step_up_redirect(response)
    assert app.application.name == "renamed" and app.application.allowed_audiences == [api.identifier]


def test_narrowing_an_application_needs_no_step_up(super_client, make_app, scopes):
    app = make_app(scopes=["orders:read", "orders:write"])
    url = reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])
    data = change_form_data(super_client.get(url))
    make_stale(super_client)
    before = AuditEvent.objects.count()
    response = super_client.post(url, {**data, "allowed_scopes": [scopes["orders:read"].pk]})
    assert response.status_code == 302 and not is_step_up_redirect(response)
    assert sorted(app.application.allowed_scopes.values_list("name", flat=True)) == ["orders:read"]
    assert AuditEvent.objects.count() > before


@pytest.mark.parametrize(
    "value", ["[" * 50_000 + "]" * 50_000, '["\\ud800"]', '["https://api.example.com/\\udfff"]']
)
def test_unusable_json_in_the_audiences_is_a_form_error(value, super_client, make_app):
    """Django's JSON form field catches only JSONDecodeError: deep nesting raised RecursionError, and a
    lone surrogate, echoed by check_audiences, failed the page's encoding (UnicodeEncodeError)."""
    url = reverse("admin:tokens_m2mapplication_change", args=[make_app().application.pk])
    data = change_form_data(super_client.get(url))
    super_client.raise_request_exception = False
    response = super_client.post(url, {**data, "allowed_audiences": value})
    assert response.status_code == 200, response.status_code
    assert "Enter a valid JSON" in response.content.decode()


def test_audiences_saved_in_the_admin_are_stored_as_checked(super_client, make_app):
    """An audience is stored as it is checked (stripped, deduplicated): " https://orders…" saved
    with its space would refuse every token for that API (invalid_target)."""
    api = ResourceServerFactory(identifier="https://orders.example.com")
    app = make_app()
    url = reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])
    data = change_form_data(super_client.get(url))
    response = super_client.post(url, {**data, "allowed_audiences": json.dumps([" " + api.identifier])})
    assert response.status_code == 302  # saved, as far as staff can tell
    app.application.refresh_from_db()
    token = request_token(Client(), app, resource=api.identifier)
    assert app.application.allowed_audiences == [api.identifier], app.application.allowed_audiences
    assert token.status_code == 200, token.content
