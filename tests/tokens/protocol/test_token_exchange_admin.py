"""Who may let a gateway exchange API keys (staff, in the admin, audited), and where customers see it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from credentials.api_keys.services import api_key_create
from portal.models import AuditEvent
from tests.portal.test_account_security import make_stale
from tests.tokens.conftest import basic
from tokens.models import M2MApplication
from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE

pytestmark = pytest.mark.django_db


def _admin_form(application: M2MApplication, **overrides) -> dict:
    data = {
        "name": application.name,
        "description": "",
        "owner": application.owner_id,
        "allowed_scopes": [s.pk for s in application.allowed_scopes.all()],
        "allowed_audiences": "[]",
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
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _exchange(app, key: str):
    return Client().post(
        "/oauth/token",
        {"grant_type": GRANT_TYPE, "subject_token": key, "subject_token_type": API_KEY_TOKEN_TYPE},
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )


def test_staff_allow_and_disallow_a_gateway_in_the_admin_audited(
    staff_client, app, organization, owner, scopes
):
    _key, plaintext = api_key_create(
        organization=organization, name="k", owner=owner, scopes=["orders:read"], actor=owner
    )
    assert _exchange(app, plaintext).status_code == 400  # unauthorized_client until staff allow it
    url = reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])
    assert "may_exchange_api_keys" in staff_client.get(url).content.decode()

    response = staff_client.post(url, _admin_form(app.application, may_exchange_api_keys="on"))
    assert response.status_code == 302, response.content.decode()[:2000]
    app.application.refresh_from_db()
    assert app.application.may_exchange_api_keys is True
    event = AuditEvent.objects.get(action="tokens.m2m_app.exchange_allowed")
    assert event.actor == staff_client.staff and event.target_id == str(app.application.pk)
    assert event.organization == app.application.organization
    assert _exchange(app, plaintext).status_code == 200

    response = staff_client.post(url, _admin_form(app.application))  # the box unticked
    assert response.status_code == 302
    app.application.refresh_from_db()
    assert app.application.may_exchange_api_keys is False
    assert AuditEvent.objects.filter(action="tokens.m2m_app.exchange_disallowed").count() == 1
    assert _exchange(app, plaintext).status_code == 400

    # Saving without touching the flag writes no exchange event.
    staff_client.post(url, _admin_form(app.application, description="x"))
    assert AuditEvent.objects.filter(action__startswith="tokens.m2m_app.exchange_").count() == 2


def test_allowing_a_gateway_asks_staff_for_a_fresh_sign_in(staff_client, app):
    make_stale(staff_client)
    url = reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])
    response = staff_client.post(url, _admin_form(app.application, may_exchange_api_keys="on"))
    assert response.status_code == 302 and "reauthenticate" in response["Location"]
    app.application.refresh_from_db()
    assert app.application.may_exchange_api_keys is False
    assert not AuditEvent.objects.filter(action="tokens.m2m_app.exchange_allowed").exists()


def test_admin_lists_and_filters_gateways(staff_client, app):
    response = staff_client.get(
        reverse("admin:tokens_m2mapplication_changelist") + "?may_exchange_api_keys__exact=1"
    )
    assert response.status_code == 200
    assert app.client_id not in response.content.decode()


def test_a_customer_cannot_allow_their_own_application(owner_client, owner, scopes):
    response = owner_client.post(
        reverse("org-app-create", kwargs={"org_slug": "acme"}),
        {
            "name": "Sneaky gateway",
            "owner": owner.pk,
            "scopes": ["orders:read"],
            "token_lifetime": "600",
            "may_exchange_api_keys": "on",
        },
    )
    assert response.status_code == 201
    assert M2MApplication.objects.get(name="Sneaky gateway").may_exchange_api_keys is False


def test_a_customer_has_no_admin(owner_client, app):
    url = reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])
    response = owner_client.post(url, _admin_form(app.application, may_exchange_api_keys="on"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    app.application.refresh_from_db()
    assert app.application.may_exchange_api_keys is False


def test_gateway_page_says_what_staff_set(owner_client, app, settings):
    url = reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    page = owner_client.get(url).content.decode()
    assert "Not allowed. Staff allow trusted gateways" in page
    app.application.may_exchange_api_keys = True
    app.application.save()
    page = owner_client.get(url).content.decode()
    assert "Allowed to exchange API keys" in page and "(set by staff)" in page
    assert f"at most {settings.PORTAL_EXCHANGE_TOKEN_LIFETIME_SECONDS} seconds" in page


def test_api_key_page_explains_token_exchange(owner_client, organization, owner, scopes):
    api_key, _plaintext = api_key_create(
        organization=organization, name="k", owner=owner, scopes=["orders:read"], actor=owner
    )
    url = reverse("org-api-key-detail", kwargs={"org_slug": "acme", "key_id": api_key.key_id})
    page = owner_client.get(url).content.decode()
    assert "Can be exchanged for short-lived tokens at a gateway" in page
    assert API_KEY_TOKEN_TYPE in page


def test_marking_a_resource_server_needs_a_fresh_sign_in_and_is_audited(
    staff_client, app, other_app, token_for
):
    """Issue 14, item 8: `is_resource_server` goes the way of `may_exchange_api_keys`."""
    import json

    from tests.tokens.protocol.test_introspect_revoke import introspect

    token = token_for(app)  # a token of Acme; `other_app` belongs to Globex

    def sees_acme() -> bool:
        return json.loads(introspect(Client(), other_app, token).content)["active"]

    url = reverse("admin:tokens_m2mapplication_change", args=[other_app.application.pk])
    make_stale(staff_client)
    response = staff_client.post(url, _admin_form(other_app.application, is_resource_server="on"))
    assert response.status_code == 302 and "reauthenticate" in response["Location"]
    other_app.application.refresh_from_db()
    assert other_app.application.is_resource_server is False and not sees_acme()
    assert not AuditEvent.objects.filter(action__startswith="tokens.m2m_app.resource_server_").exists()

    staff_client.force_login(staff_client.staff)  # signed in again: recent
    response = staff_client.post(url, _admin_form(other_app.application, is_resource_server="on"))
    assert response.status_code == 302 and "reauthenticate" not in response["Location"]
    other_app.application.refresh_from_db()
    assert other_app.application.is_resource_server is True and sees_acme()
    event = AuditEvent.objects.get(action="tokens.m2m_app.resource_server_allowed")
    assert event.actor == staff_client.staff and event.target_id == str(other_app.application.pk)
    assert event.organization == other_app.application.organization

    # Unticking is a change of who holds power too: fresh sign-in, audited, effective at once.
    make_stale(staff_client)
    response = staff_client.post(url, _admin_form(other_app.application))
    assert "reauthenticate" in response["Location"]
    other_app.application.refresh_from_db()
    assert other_app.application.is_resource_server is True
    staff_client.force_login(staff_client.staff)
    staff_client.post(url, _admin_form(other_app.application))
    other_app.application.refresh_from_db()
    assert other_app.application.is_resource_server is False and not sees_acme()
    assert AuditEvent.objects.filter(action="tokens.m2m_app.resource_server_disallowed").count() == 1

    # Saving other fields while stale neither asks nor writes a flag event.
    make_stale(staff_client)
    response = staff_client.post(url, _admin_form(other_app.application, description="x"))
    assert response.status_code == 302 and "reauthenticate" not in response["Location"]
    assert AuditEvent.objects.filter(action__startswith="tokens.m2m_app.resource_server_").count() == 2
