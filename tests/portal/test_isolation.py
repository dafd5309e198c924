"""One generic walk over every organisation-scoped URL: another organisation's user gets 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.isolation import org_scoped_url_names, two_organizations, url_kwargs, url_params


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
