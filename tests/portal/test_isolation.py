"""One generic walk over every organisation-scoped URL: another organisation's user gets 404."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from portal.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.isolation import URL_KWARG_FACTORIES, URL_KWARG_OVERRIDES


def _walk(patterns, prefix_ns=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{prefix_ns}{entry.namespace}:" if entry.namespace else prefix_ns
            yield from _walk(entry.url_patterns, ns)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{prefix_ns}{entry.name}", entry


def org_scoped_url_names() -> list[str]:
    """Return the names of every URL pattern that takes an `org_slug`."""
    names = set()
    resolver = get_resolver()
    for name, _pattern in _walk(resolver.url_patterns):
        for entry in resolver.reverse_dict.getlist(name.split(":")[-1]) or []:
            for _route, params in entry[0]:
                if "org_slug" in params:
                    names.add(name)
    return sorted(names)


def _params(name: str) -> set[str]:
    resolver = get_resolver()
    params: set[str] = set()
    for entry in resolver.reverse_dict.getlist(name.split(":")[-1]):
        for _route, p in entry[0]:
            params |= set(p)
    return params


def _kwargs_for(name: str, org_slug: str, objects_org, user) -> dict:
    kwargs = {"org_slug": org_slug}
    for param in sorted(_params(name) - {"org_slug", "format"}):
        factory = URL_KWARG_OVERRIDES.get((name, param)) or URL_KWARG_FACTORIES.get(param)
        assert factory is not None, f"URL {name!r} takes {param!r}: register it in tests/isolation.py"
        kwargs[param] = factory(objects_org, user)
    return kwargs


@pytest.fixture
def two_orgs(db):
    org_a = OrganizationFactory(slug="alpha", name="Alpha")
    org_b = OrganizationFactory(slug="bravo", name="Bravo")
    user_a = MembershipFactory(
        organization=org_a, role=Role.OWNER, user=UserFactory(email="a@alpha.test")
    ).user
    user_b = MembershipFactory(
        organization=org_b, role=Role.OWNER, user=UserFactory(email="b@bravo.test")
    ).user
    MembershipFactory(organization=org_b, role=Role.MEMBER)
    MembershipFactory(organization=org_a, role=Role.MEMBER)
    return org_a, org_b, user_a, user_b


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
        url = reverse(name, kwargs=_kwargs_for(name, org_b.slug, org_b, user_b))
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
        if _params(name) - {"org_slug", "format"} == set():
            continue
        url = reverse(name, kwargs=_kwargs_for(name, org_a.slug, org_b, user_b))
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (404, 405), (
                f"{method.upper()} {url} answered {response.status_code}"
            )


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_login_or_refused(client, two_orgs):
    org_a, org_b, user_a, user_b = two_orgs
    for name in org_scoped_url_names():
        url = reverse(name, kwargs=_kwargs_for(name, org_a.slug, org_a, user_a))
        response = client.get(url)
        assert response.status_code in (302, 401, 403, 405), f"GET {url} answered {response.status_code}"
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("login"))
