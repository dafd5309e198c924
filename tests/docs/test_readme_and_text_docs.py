"""Statements in README.md and docs/*.md checked against the code's own lists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from credentials.webhooks.models import EventType
from tests.factories import ScopeFactory, make_api_key
from tests.support.pem import pem_pair
from tokens.clients.api import _CONFLICT_CODES
from tokens.models import M2MApplication

ROOT = Path(settings.BASE_DIR)


def test_readme_lists_every_webhook_event():
    """README.md:127-129 lists the events owners choose from."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Webhooks", 1)[1].split("##", 1)[0]
    listed = set(re.findall(r"`\.?(?:credential\.)?([a-z_]+)`", section.split("Each delivery", 1)[0]))
    assert set(EventType.values) - listed == set()


def test_m2m_rest_409_codes_are_all_documented():
    """docs/m2m.md:800-801 names the 409 codes of the applications API."""

    text = (ROOT / "docs" / "m2m.md").read_text()
    sentence = re.search(r"answers 409 with a code \(([^)]*)\)", text).group(1)
    assert _CONFLICT_CODES - set(re.findall(r"`([a-z_]+)`", sentence)) == set()


@pytest.mark.django_db
def test_pending_private_key_jwt_application_answers_409_not_approved(organization, owner, scopes, make_app):
    ScopeFactory(name="m2m_apps:manage")
    _row, key = make_api_key(organization, owner, scopes=["m2m_apps:manage", "orders:read"])
    _private, public = pem_pair()
    app = make_app(auth_method="private_key_jwt", public_key=public, scopes=["orders:read"])
    M2MApplication.objects.filter(pk=app.application.pk).update(status=M2MApplication.Status.PENDING)
    _p2, public2 = pem_pair()
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
        f"/api/v1/orgs/{organization.slug}/m2m-apps/{app.application.pk}/public-keys/",
        {"public_key": public2},
        content_type="application/json",
    )
    assert response.status_code == 409 and response.json()["code"] == "not_approved", response.content


@pytest.mark.django_db
def test_healthz_body_as_in_operations_md():
    """docs/operations.md:201."""
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}
