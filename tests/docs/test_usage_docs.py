"""docs/usage.md: the usage API's parameters, answers and errors."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import ScopeFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(organization, owner, scopes):
    ScopeFactory(name="usage:read")
    row, key = make_api_key(organization, owner, name="billing export", scopes=["usage:read", "orders:read"])
    return row, Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def test_json_answer_shape(organization, reader, make_app):
    row, c = reader
    app = make_app()
    c.get("/api/v1/whoami")
    response = c.get(
        f"/api/v1/orgs/{organization.slug}/usage/",
        {"credential": [row.key_id, app.client_id], "granularity": "hour"},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"granularity", "since", "until", "outcomes", "credentials"}
    assert body["outcomes"] == [
        "valid",
        "invalid_secret",
        "expired",
        "revoked",
        "suspended",
        "insufficient_scope",
        "ip_denied",
        "rate_limited",
    ]
    assert [c["kind"] for c in body["credentials"]] == ["api_key", "m2m_app"]
    assert set(body["credentials"][0]) == {"credential", "kind", "name", "totals", "buckets"}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"credential": "nope"},
        {"granularity": "week"},
        {"since": "yesterday"},
        {"since": "2026-12-06T10:00:00Z", "until": "2026-12-06T09:00:00Z"},
        {"since": "2000-01-01T00:00:00Z", "granularity": "minute"},
    ],
)
def test_documented_errors_are_400_field_errors(organization, reader, params):
    row, c = reader
    query = {"credential": row.key_id, **params} if params and "credential" not in params else params
    response = c.get(f"/api/v1/orgs/{organization.slug}/usage/", query)
    assert response.status_code == 400, (params, response.content)
    assert isinstance(response.json(), dict)


def test_another_organisations_slug_is_404(organization, other_organization, reader):
    row, c = reader
    assert (
        c.get(f"/api/v1/orgs/{other_organization.slug}/usage/", {"credential": row.key_id}).status_code == 404
    )


def test_csv_content_type_and_filename(organization, reader):
    row, c = reader
    for response in (
        c.get(f"/api/v1/orgs/{organization.slug}/usage/", {"credential": row.key_id, "format": "csv"}),
        c.get(f"/api/v1/orgs/{organization.slug}/usage/", {"credential": row.key_id}, HTTP_ACCEPT="text/csv"),
    ):
        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert re.fullmatch(
            rf'attachment; filename="{organization.slug}-usage-hour-[^"]+-[^"]+\.csv"',
            response["Content-Disposition"],
        ), response["Content-Disposition"]
        assert response.content.decode().splitlines()[0] == (
            "credential,kind,name,start,valid,invalid_secret,expired,revoked,suspended,insufficient_scope,"
            "ip_denied,rate_limited,total"
        )


def test_dashboard_csv_url_names_exist(organization, reader, make_app):
    row, _c = reader
    app = make_app()
    assert reverse("org-api-key-usage-csv", args=[organization.slug, row.key_id]) == (
        f"/orgs/{organization.slug}/api-keys/{row.key_id}/usage.csv"
    )
    assert reverse("org-app-usage-csv", args=[organization.slug, app.application.pk]) == (
        f"/orgs/{organization.slug}/apps/{app.application.pk}/usage.csv"
    )


def test_at_most_100_credentials(organization, reader):
    row, c = reader
    response = c.get(f"/api/v1/orgs/{organization.slug}/usage/", {"credential": [row.key_id] * 101})
    assert response.status_code == 400, response.content
