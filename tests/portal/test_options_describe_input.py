"""OPTIONS says what a write takes (portal.api.metadata.DescribesInput), not what it answers."""

from __future__ import annotations

import pytest
from django.test import Client

from portal import authz
from portal.api.metadata import DescribesInput
from tests.factories import ScopeFactory, make_api_key
from tests.isolation import walk_urls

EVERY = [*sorted(authz.PORTAL_SCOPES), "orders:read"]


def test_every_write_of_a_described_viewset_names_its_input():
    """A new POST action on these viewsets fails here until it names its input (or None)."""
    writes = set()
    for name, pattern, _route in walk_urls():
        cls, actions = getattr(pattern.callback, "cls", None), getattr(pattern.callback, "actions", {})
        if cls is None or not issubclass(cls, DescribesInput):
            continue
        for method, action in actions.items():
            if method in ("post", "put"):
                writes.add(name)
                assert action in cls.input_serializers, f"{cls.__name__}.{action} ({name}) names no input"
    assert {"api-org-api-key-list", "api-org-webhook-list", "api-org-m2m-app-list"} <= writes, writes


@pytest.fixture
def key_client(settings, organization, owner, scopes):
    settings.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 0
    for name in authz.PORTAL_SCOPES:
        ScopeFactory(name=name)
    _row, key = make_api_key(organization, owner, name="all", scopes=EVERY)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path,required",
    [
        ("/api/v1/orgs/acme/api-keys/", "name"),
        ("/api/v1/orgs/acme/webhooks/", "url"),
        ("/api/v1/orgs/acme/m2m-apps/", "name"),
    ],
)
def test_options_on_a_list_describes_the_create_input(key_client, path, required):
    post = key_client.options(path).json()["actions"]["POST"]
    assert post[required]["read_only"] is False and post[required]["required"] is True, post[required]
    # The representation's own fields (the id, the status) are no input.
    assert "status" not in post and "created_at" not in post, sorted(post)
