"""Every organisation-scoped URL, every method (GET, POST, PUT, PATCH, DELETE), another
organisation's object under the caller's own slug, as a session and as the caller's own
organisation's API key and M2M token holding every portal scope: 404/405 (or a redirect to sign in
for a dashboard page called with a bearer), and nothing of the other organisation changes.
(The tenancy walk of tests/portal/test_isolation.py sends GET and POST with a session only.)
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.isolation import org_scoped_url_names, url_kwargs, url_params, walk_urls
from tests.security.authority import state

METHODS = ("get", "post", "put", "patch", "delete", "head")


@pytest.fixture
def world(two_org_world):
    return two_org_world


#: Refusals decided before any object is looked up (the same for any id): not a tenancy leak.
GATE_CODES = {"session_required"}


def _acceptable(response, label: str) -> bool:
    if response.status_code in (404, 405):
        return True
    if label != "session" and response.status_code == 401:
        return True  # the view does not take this kind of credential at all
    if label != "session" and response.status_code == 403:
        return response.json().get("code") in GATE_CODES
    return False


def _is_rest(name: str) -> bool:
    for n, pattern, _route in walk_urls():
        if n == name:
            return hasattr(pattern.callback, "cls")
    raise AssertionError(name)


def _every_method(url: str, rest: bool, clients: dict) -> list[str]:
    """Send every method to `url` as each principal (a session only for a dashboard page); return
    what answered otherwise than refused, named Bravo, or changed anything."""
    failures = []
    before = state()
    for label, client in clients.items():
        if not rest and label != "session":
            continue
        for method in METHODS:
            if rest:
                response = getattr(client, method)(url, {}, content_type="application/json")
            else:
                response = getattr(client, method)(url)
            if not _acceptable(response, label):
                failures.append(f"{method.upper()} {url} as {label}: {response.status_code}")
            elif b"Bravo" in response.content:
                failures.append(f"{method.upper()} {url} as {label}: leaked the name")
    if state() != before:
        failures.append(f"{url}: something changed")
    return failures


@pytest.mark.django_db
def test_other_organisations_objects_under_own_slug_every_method_every_principal(world):
    org_a, org_b, user_a, user_b, clients = world
    failures = []
    for name in org_scoped_url_names():
        if url_params(name) - {"org_slug", "format"} == set():
            continue
        rest = _is_rest(name)
        url = reverse(name, kwargs=url_kwargs(name, org_a.slug, org_b, user_b))
        failures += _every_method(url, rest, clients)
    assert failures == [], "\n".join(failures)


@pytest.mark.django_db
def test_other_organisations_slug_every_method_every_principal(world):
    org_a, org_b, user_a, user_b, clients = world
    failures = []
    for name in org_scoped_url_names():
        rest = _is_rest(name)
        url = reverse(name, kwargs=url_kwargs(name, org_b.slug, org_b, user_b))
        failures += _every_method(url, rest, clients)
    assert failures == [], "\n".join(failures)
