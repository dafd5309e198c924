"""One generic walk over every organisation-scoped URL: another organisation's user gets 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import AuditEvent
from tests.isolation import (
    confirm_page_url_names,
    org_scoped_url_names,
    two_organizations,
    url_kwargs,
    url_params,
)


@pytest.fixture
def two_orgs(db):
    return two_organizations()


def test_walk_finds_the_org_pages():
    names = org_scoped_url_names()
    assert "org-home" in names and "org-members" in names and "org-audit" in names
    assert {"api-org-request-list", "api-org-request-approve", "api-org-request-cancel"} <= set(names)
    assert {
        "api-org-m2m-app-list",
        "api-org-m2m-app-detail",
        "api-org-m2m-app-rotate-secret",
        "api-org-m2m-app-secret-revoke",
        "api-org-m2m-app-revoke",
        "api-org-m2m-app-public-keys",
        "api-org-m2m-app-public-key-revoke",
    } <= set(names)


@pytest.mark.django_db
def test_other_organisations_pages_answer_404(client, two_orgs):
    org_a, org_b, user_a, user_b = two_orgs
    client.force_login(user_a)
    checked = 0
    for name in org_scoped_url_names():
        url = reverse(name, kwargs=url_kwargs(name, org_b.slug, org_b, user_b))
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (404, 405), (
                f"{method.upper()} {url} answered {response.status_code}"
            )
            if response.status_code == 405:
                continue
            assert b"Bravo" not in response.content, f"{url} leaked the organisation's name"
            checked += 1
    assert checked >= len(org_scoped_url_names())


@pytest.mark.django_db
def test_other_organisations_objects_under_own_slug_answer_404(client, two_orgs):
    org_a, org_b, user_a, user_b = two_orgs
    client.force_login(user_a)
    for name in org_scoped_url_names():
        if url_params(name) - {"org_slug", "format"} == set():
            continue
        url = reverse(name, kwargs=url_kwargs(name, org_a.slug, org_b, user_b))
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (404, 405), (
                f"{method.upper()} {url} answered {response.status_code}"
            )


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_login_or_refused(client, two_orgs):
    org_a, org_b, user_a, user_b = two_orgs
    for name in org_scoped_url_names():
        url = reverse(name, kwargs=url_kwargs(name, org_a.slug, org_a, user_a))
        response = client.get(url)
        assert response.status_code in (302, 401, 403, 405), f"GET {url} answered {response.status_code}"
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_confirmation_pages_show_only_the_own_organisations_objects(client, two_orgs, settings):
    """A one-click action's GET is its confirmation page (portal.confirm): for the organisation's own
    object a form posting back to the same URL, and nothing done; another organisation's object is 404."""
    settings.PORTAL_STEP_UP_SECONDS = 3600  # force_login is a fresh sign-in; keep it fresh for the walk
    org_a, org_b, user_a, user_b = two_orgs
    client.force_login(user_a)
    names = confirm_page_url_names()
    assert {"org-app-revoke", "org-member-remove", "org-federated-revoke", "org-request-revoke"} <= set(names)
    for name in names:
        own = reverse(name, kwargs=url_kwargs(name, org_a.slug, org_a, user_a))
        other = reverse(name, kwargs=url_kwargs(name, org_a.slug, org_b, user_b))
        events = AuditEvent.objects.count()
        response = client.get(own)
        assert response.status_code == 200, f"GET {own} answered {response.status_code}"
        assert f'<form method="post" action="{own}"' in response.content.decode(), own
        assert client.get(other).status_code == 404, f"GET {other} showed another organisation's object"
        assert AuditEvent.objects.count() == events, f"GET {own} changed something"
