"""Rename and describe a credential of either kind in the dashboard (audited; the secret stays)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from portal.models import AuditEvent
from tokens.clients.services import m2m_app_create
from tokens.models import M2MApplication


@pytest.fixture
def key(organization, owner):
    return api_key_create(organization=organization, name="old name", owner=owner, scopes=[], actor=owner)


@pytest.fixture
def app(organization, owner):
    return m2m_app_create(organization=organization, name="old app", owner=owner, actor=owner)


def test_the_owner_renames_and_describes_a_key_and_an_application(owner_client, organization, key, app):
    row, secret = key
    url = reverse("org-api-key-edit", args=[organization.slug, row.key_id])
    page = owner_client.get(reverse("org-api-key-detail", args=[organization.slug, row.key_id]))
    assert url in page.content.decode()
    response = owner_client.post(url, {"name": "billing export", "description": "Nightly job in CI"})
    assert response.status_code == 302
    row = ApiKey.objects.get(pk=row.pk)
    assert (row.name, row.description) == ("billing export", "Nightly job in CI")
    event = AuditEvent.objects.filter(action="credentials.api_key.updated", target_id=str(row.pk)).get()
    assert event.extra["description"] == {"from": "", "to": "Nightly job in CI"}
    detail = owner_client.get(reverse("org-api-key-detail", args=[organization.slug, row.key_id]))
    assert "Nightly job in CI" in detail.content.decode() and secret not in detail.content.decode()

    application, _secret = app
    url = reverse("org-app-edit", args=[organization.slug, application.pk])
    assert owner_client.post(url, {"name": "billing", "description": "Calls /orders"}).status_code == 302
    application = M2MApplication.objects.get(pk=application.pk)
    assert (application.name, application.description) == ("billing", "Calls /orders")
    assert AuditEvent.objects.filter(action="tokens.m2m_app.updated", target_id=str(application.pk)).exists()


def test_an_empty_name_is_a_field_error_and_nothing_changes(owner_client, organization, key):
    row, _secret = key
    url = reverse("org-api-key-edit", args=[organization.slug, row.key_id])
    response = owner_client.post(url, {"name": "", "description": "x"})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert ApiKey.objects.get(pk=row.pk).name == "old name"


def test_a_member_may_not_rename_someone_elses_key(member_client, organization, key, app):
    row, _secret = key
    response = member_client.post(
        reverse("org-api-key-edit", args=[organization.slug, row.key_id]), {"name": "mine now"}
    )
    assert response.status_code == 403 and ApiKey.objects.get(pk=row.pk).name == "old name"
    application, _secret = app
    response = member_client.post(
        reverse("org-app-edit", args=[organization.slug, application.pk]), {"name": "x"}
    )
    assert response.status_code == 403 and M2MApplication.objects.get(pk=application.pk).name == "old app"


def test_the_rest_api_changes_a_keys_description(owner_client, organization, key):
    row, _secret = key
    response = owner_client.patch(
        f"/api/v1/orgs/{organization.slug}/api-keys/{row.key_id}/",
        {"description": "used by the billing export"},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["description"] == "used by the billing export"
