"""URLs with two object ids: the caller's own parent with another organisation's child (or, within
one organisation, another parent's child) is a 404 and changes nothing."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from portal import authz
from portal.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, ScopeFactory, UserFactory, make_api_key
from tests.isolation import URL_KWARG_FACTORIES, URL_KWARG_OVERRIDES, org_scoped_url_names, url_params
from tests.security.authority import state

SCOPES = [*sorted(authz.PORTAL_SCOPES), "orders:read"]
CHILDREN = ("secret_id", "public_key_id", "delivery_id")


@pytest.fixture
def world(db, settings):
    settings.PORTAL_STEP_UP_SECONDS = 3600
    for name in SCOPES:
        ScopeFactory(name=name)
    org_a = OrganizationFactory(slug="alpha", name="Alpha")
    org_b = OrganizationFactory(slug="bravo", name="Bravo")
    user_a = MembershipFactory(
        organization=org_a, role=Role.OWNER, user=UserFactory(email="a@alpha.test")
    ).user
    user_b = MembershipFactory(
        organization=org_b, role=Role.OWNER, user=UserFactory(email="b@bravo.test")
    ).user
    session = Client()
    session.force_login(user_a)
    _row, key = make_api_key(org_a, user_a, name="a everything", scopes=SCOPES)
    return (
        org_a,
        org_b,
        user_a,
        user_b,
        {"session": session, "api_key": Client(HTTP_AUTHORIZATION=f"Bearer {key}")},
    )


def _factory(name, param):
    return URL_KWARG_OVERRIDES.get((name, param)) or URL_KWARG_FACTORIES[param]


@pytest.mark.django_db
def test_own_parent_with_another_organisations_child_answers_404(world):
    org_a, org_b, user_a, user_b, clients = world
    failures, walked = [], 0
    for name in org_scoped_url_names():
        params = url_params(name) - {"org_slug", "format"}
        children = params & set(CHILDREN)
        if not children:
            continue
        kwargs = {"org_slug": org_a.slug}
        for param in sorted(params - children):
            kwargs[param] = _factory(name, param)(org_a, user_a)
        for param in children:
            _factory(name, param)(org_a, user_a)  # the own parent has children of its own too
            kwargs[param] = _factory(name, param)(org_b, user_b)
        url = reverse(name, kwargs=kwargs)
        before = state()
        for label, client in clients.items():
            if not name.startswith("api-") and label != "session":
                continue
            walked += 1
            response = (
                client.post(url, {}, content_type="application/json")
                if name.startswith("api-")
                else client.post(url)
            )
            if response.status_code not in (404, 405, 401):
                failures.append(f"POST {url} as {label}: {response.status_code} {response.content[:200]!r}")
        if state() != before:
            failures.append(f"{url}: something changed")
    assert walked >= 6
    assert failures == [], "\n".join(failures)
