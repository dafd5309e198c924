"""A move acts on the key as its caller was authorised against: an owner, scopes or runtime policy
changed between the authority check and the service's lock is refused (`conflict`), never carried
over to an application whose secret the caller may not have (the authority rule).

The REST tests make the change at the point a concurrent write would land: right after the view's
last authority check (`check_policy_within_caller`), before the service locks the key.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from credentials.governance.edits import credential_policy_set, credential_scopes_set
from credentials.governance.ownership import credential_reassign_owner
from tests.factories import ScopeFactory
from tokens.clients import move_api
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db

LIMIT = {"requests": 100, "per_seconds": 60}


def _after_the_checks(monkeypatch, change) -> None:
    """Make `change()` commit right after the REST move's authority checks, before its service runs."""
    real = move_api.check_policy_within_caller

    def checked_then_changed(*args, **kwargs):
        real(*args, **kwargs)
        change()

    monkeypatch.setattr(move_api, "check_policy_within_caller", checked_then_changed)


def _move_over_rest(client: Client, key: ApiKey):
    return client.post(
        f"/api/v1/orgs/acme/api-keys/{key.key_id}/move-to-m2m-app/", {}, content_type="application/json"
    )


def test_a_member_never_moves_a_key_that_stopped_being_theirs_meanwhile(
    monkeypatch, owner, admin_user, member, member_client, make_key
):
    """A member may move only their own key; given to someone else after the check, it is refused."""
    key, _ = make_key(name="was theirs", owner=member)
    _after_the_checks(
        monkeypatch,
        lambda: credential_reassign_owner(
            credential=ApiKey.objects.get(pk=key.pk), owner=owner, actor=admin_user
        ),
    )
    response = _move_over_rest(member_client, key)
    assert (response.status_code, response.json()["code"]) == (409, "conflict"), response.json()
    assert "client_secret" not in response.json()
    assert not M2MApplication.objects.exists()


@pytest.fixture
def calling_key(organization, owner):
    """An API key that may move keys, holding orders:read (not orders:write) and a rate limit."""
    ScopeFactory(name="m2m_apps:manage")
    _key, plaintext = api_key_create(
        organization=organization,
        name="automation",
        owner=owner,
        scopes=["api_keys:manage", "m2m_apps:manage", "orders:read"],
        actor=owner,
        rate_limit=LIMIT,
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")


@pytest.mark.parametrize(
    "widen",
    [
        lambda key, admin: credential_scopes_set(
            credential=key, scopes=["orders:read", "orders:write"], actor=admin
        ),
        lambda key, admin: credential_policy_set(credential=key, rate_limit=None, actor=admin),
    ],
    ids=["scopes", "rate-limit"],
)
def test_a_calling_key_never_gets_the_secret_of_an_application_wider_than_itself(
    monkeypatch, admin_user, make_key, calling_key, widen
):
    """The calling key was checked against the target's scopes and runtime policy as read; a
    widening committed before the service locks the key must not reach the new application."""
    target, _ = make_key(name="target", scopes=["orders:read"], rate_limit=LIMIT)
    _after_the_checks(monkeypatch, lambda: widen(ApiKey.objects.get(pk=target.pk), admin_user))
    response = _move_over_rest(calling_key, target)
    assert (response.status_code, response.json()["code"]) == (409, "conflict"), response.json()
    assert not M2MApplication.objects.exists()


def test_an_unchanged_key_moves_for_the_calling_key(make_key, calling_key):
    """The check refuses changes only: the same move with nothing changed in between succeeds."""
    target, _ = make_key(name="target", scopes=["orders:read"], rate_limit=LIMIT)
    response = _move_over_rest(calling_key, target)
    assert response.status_code == 201, response.json()
    assert response.json()["scopes"] == ["orders:read"]


@pytest.mark.parametrize(
    "change",
    [
        lambda key, owner, admin, member: credential_reassign_owner(
            credential=key, owner=member, actor=admin
        ),
        lambda key, owner, admin, member: credential_scopes_set(
            credential=key, scopes=["billing:read"], actor=admin
        ),
        lambda key, owner, admin, member: credential_policy_set(
            credential=key, allowed_ips=["10.0.0.0/8"], actor=admin
        ),
    ],
    ids=["owner", "scopes", "policy"],
)
def test_the_service_refuses_a_key_changed_since_it_was_read(owner, admin_user, member, make_key, change):
    """The dashboard and the CLI pass the key as they read (and, the dashboard, authorised) it."""
    key, _ = make_key(name="exporter", scopes=["orders:read"])
    change(ApiKey.objects.get(pk=key.pk), owner, admin_user, member)
    with pytest.raises(ValidationError) as refused:
        api_key_move_to_m2m_app(api_key=key, actor=owner)
    assert refused.value.code == "conflict"
    assert not M2MApplication.objects.exists()
