"""URLs with two object ids: the caller's own parent with another organisation's child (or, within
one organisation, another parent's child) is a 404 and changes nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.isolation import (
    URL_KWARG_FACTORIES,
    URL_KWARG_OVERRIDES,
    org_scoped_url_names,
    url_params,
)
from tests.security.authority import state

CHILDREN = ("secret_id", "public_key_id", "delivery_id")


@pytest.fixture
def world(two_org_world):
    return two_org_world


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
