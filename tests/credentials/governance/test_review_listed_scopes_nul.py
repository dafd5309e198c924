"""A review or scope change whose `shown` (the scopes the page listed) holds a NUL is refused, never a 500.

What was wrong: RecertifyForm built its scope choices from the raw `shown` value, before any field
was cleaned, so `review-shown=orders:read a\\x00b` put a NUL into the choices' query and PostgreSQL
refused it (a DataError, a 500) on the review of an API key, an M2M application or a federated
trust. Entries that cannot name a scope (a NUL, longer than a scope name) are now left out of the
query and `shown`'s own check refuses the post. The scope change form reads `shown` only once
cleaned: checked here too.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent
from tokens.federation.services import federated_identity_create

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def client(recent_owner_client) -> Client:
    return recent_owner_client


@pytest.fixture(params=["api_key", "m2m_app", "federated"])
def review_url(request, organization, owner, make_key, make_app) -> str:
    """The review URL of one credential of each kind, all holding (or acting with) orders:read."""
    if request.param == "api_key":
        api_key, _ = make_key(scopes=["orders:read"])
        return reverse("org-api-key-recertify", args=[organization.slug, api_key.key_id])
    app = make_app(scopes=["orders:read"])
    if request.param == "m2m_app":
        return reverse("org-app-recertify", args=[organization.slug, app.application.pk])
    identity, _ = federated_identity_create(
        application=app.application,
        actor=owner,
        issuer="https://token.actions.githubusercontent.com",
        subject="repo:acme/api:ref:refs/heads/main",
        preset="github_actions",
    )
    return reverse("org-federated-recertify", args=[organization.slug, identity.pk])


@pytest.mark.parametrize("listed", ["orders:read a\x00b", "orders:read \x00"])
def test_a_review_listing_a_nul_is_refused(client, review_url, listed):
    before = AuditEvent.objects.count()

    response = client.post(review_url, {"review-shown": listed, "review-scopes": ["orders:read"]})

    assert response.status_code == 302
    assert AuditEvent.objects.count() == before


def test_a_review_listing_more_than_a_scope_name_is_not_a_500(client, review_url):
    # Nothing that long is a scope: left out of the query, the review goes on with the rest.
    response = client.post(
        review_url, {"review-shown": "orders:read " + "x" * 10_000, "review-scopes": ["orders:read"]}
    )

    assert response.status_code == 302


def test_a_review_as_the_page_listed_it_still_works(client, make_key, organization):
    api_key, _ = make_key(scopes=["orders:read", "orders:write"])
    url = reverse("org-api-key-recertify", args=[organization.slug, api_key.key_id])

    client.post(url, {"review-shown": "orders:read orders:write", "review-scopes": ["orders:read"]})

    api_key.refresh_from_db()
    assert sorted(api_key.scopes) == ["orders:read"] and api_key.last_reviewed_at is not None


@pytest.mark.parametrize(
    "data",
    [
        {"shown": "orders:read a\x00b", "scopes": ["orders:read"]},
        {"shown": "orders:read", "scopes": ["orders:read", "a\x00b"]},
        {"shown": "orders:read " + "x" * 10_000, "scopes": ["orders:read"]},
    ],
)
def test_a_scope_change_with_a_nul_is_refused(client, make_key, organization, data):
    api_key, _ = make_key(scopes=["orders:read"])
    before = AuditEvent.objects.count()

    response = client.post(reverse("org-api-key-scopes", args=[organization.slug, api_key.key_id]), data)

    assert response.status_code in (200, 302, 400), response.status_code
    api_key.refresh_from_db()
    assert sorted(api_key.scopes) == ["orders:read"] and AuditEvent.objects.count() == before
