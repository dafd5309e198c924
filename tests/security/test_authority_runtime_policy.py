"""A credential's runtime policy (IP allowlist, rate limit) is part of its width (BRIEF.md, "The
authority rule": no credential widens itself or creates one wider than itself).

Think like a leaked key kept to the CI network: from inside that network it must not lift its own
allowlist or limit, nor mint an unrestricted key or application to use from anywhere later.
"""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from tests.factories import ScopeFactory
from tests.security.authority import state
from tests.tokens.conftest import basic
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/orgs/acme/api-keys/"
APPS = "/api/v1/orgs/acme/m2m-apps/"
CI_NETWORK = ["10.0.0.0/8"]
INSIDE = "10.1.2.3"
LIMIT = {"requests": 100, "per_seconds": 60}


@pytest.fixture(autouse=True)
def catalogue(db):
    for name in ("api_keys:manage", "m2m_apps:manage", "orders:read"):
        ScopeFactory(name=name)


@pytest.fixture
def ci_key(organization, owner):
    """An automation key holding `api_keys:manage` and `m2m_apps:manage`, kept to the CI network
    and 100 requests a minute."""
    key, secret = api_key_create(
        organization=organization,
        name="ci",
        owner=owner,
        scopes=["api_keys:manage", "m2m_apps:manage", "orders:read"],
        actor=owner,
        allowed_ips=CI_NETWORK,
        rate_limit=LIMIT,
    )
    return key, Client(HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR=INSIDE)


def refused(response, before) -> None:
    assert response.status_code == 403, (response.status_code, response.content)
    assert response.json()["code"] == "exceeds_credential", response.json()
    assert state() == before, "a refusal changed something"


def patch(client, path, body):
    return client.patch(path, body, "application/json")


def test_a_key_cannot_lift_its_own_allowlist_or_limit_but_may_tighten_them(ci_key):
    key, client = ci_key
    before = state()
    for body in (
        {"allowed_ips": []},
        {"allowed_ips": ["0.0.0.0/0"]},
        {"allowed_ips": ["10.0.0.0/8", "192.0.2.0/24"]},
        {"rate_limit": None},
        {"rate_limit": {"requests": 1000, "per_seconds": 60}},
        # The same number over a shorter window is more on average.
        {"rate_limit": {"requests": 100, "per_seconds": 1}},
    ):
        refused(patch(client, f"{KEYS}{key.key_id}/", body), before)

    tighter = patch(
        client,
        f"{KEYS}{key.key_id}/",
        {"allowed_ips": ["10.1.0.0/16"], "rate_limit": {"requests": 10, "per_seconds": 60}},
    )
    assert tighter.status_code == 200, tighter.content
    key.refresh_from_db()
    assert key.allowed_ips == ["10.1.0.0/16"] and key.rate_limit == {"requests": 10, "per_seconds": 60}
    # And tightened it stays: the old values are now looser than the key itself.
    refused(patch(client, f"{KEYS}{key.key_id}/", {"allowed_ips": CI_NETWORK}), state())


def test_a_key_cannot_mint_a_key_looser_than_itself(ci_key):
    _, client = ci_key
    before = state()
    for extra in (
        {},  # no allowlist, no limit
        {"allowed_ips": ["0.0.0.0/0"], "rate_limit": LIMIT},
        {"allowed_ips": CI_NETWORK},  # no limit
        {"allowed_ips": CI_NETWORK, "rate_limit": {"requests": 101, "per_seconds": 60}},
    ):
        response = client.post(
            KEYS, {"name": "escape", "scopes": ["orders:read"], **extra}, "application/json"
        )
        refused(response, before)

    within = client.post(
        KEYS,
        {"name": "deploy", "scopes": ["orders:read"], "allowed_ips": ["10.9.0.0/16"], "rate_limit": LIMIT},
        "application/json",
    )
    assert within.status_code == 201, within.content
    created = ApiKey.objects.get(key_id=within.json()["id"])
    assert created.allowed_ips == ["10.9.0.0/16"] and created.rate_limit == LIMIT


def test_a_key_may_tighten_a_looser_key_it_manages_without_first_bounding_all_of_it(
    ci_key, organization, owner
):
    _, client = ci_key
    open_key, _ = api_key_create(
        organization=organization, name="legacy", owner=owner, scopes=["orders:read"], actor=owner
    )
    # Its allowlist stays open (looser than the caller's), but nothing is loosened.
    response = patch(client, f"{KEYS}{open_key.key_id}/", {"rate_limit": LIMIT})
    assert response.status_code == 200, response.content
    # Opening the limit again is loosening, beyond the caller's own.
    refused(patch(client, f"{KEYS}{open_key.key_id}/", {"rate_limit": None}), state())


def test_a_person_is_bounded_by_the_organisation_only(owner_client, ci_key):
    key, _ = ci_key
    response = owner_client.patch(
        f"{KEYS}{key.key_id}/", {"allowed_ips": [], "rate_limit": None}, "application/json"
    )
    assert response.status_code == 200, response.content


def test_an_applications_token_cannot_mint_or_open_an_application_looser_than_its_own(organization, owner):
    application, secret = m2m_app_create(
        organization=organization,
        name="pipeline",
        owner=owner,
        scopes=["m2m_apps:manage", "orders:read"],
        actor=owner,
        allowed_ips=CI_NETWORK,
        rate_limit=LIMIT,
    )
    # Minted from inside the network: the token endpoint applies the application's allowlist.
    minted = Client(REMOTE_ADDR=INSIDE).post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(application.client_id, secret),
    )
    assert minted.status_code == 200, minted.content
    token = minted.json()["access_token"]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=INSIDE)
    before = state()
    refused(client.post(APPS, {"name": "escape", "scopes": ["orders:read"]}, "application/json"), before)
    refused(patch(client, f"{APPS}{application.pk}/", {"allowed_ips": []}), before)
    within = client.post(
        APPS,
        {"name": "child", "scopes": ["orders:read"], "allowed_ips": ["10.2.0.0/16"], "rate_limit": LIMIT},
        "application/json",
    )
    assert within.status_code == 201, within.content


def test_a_key_cannot_get_a_secret_of_a_looser_credential_by_rotating_or_moving_it(
    ci_key, organization, owner
):
    """Rotation and a move hand out a new secret of the target: the target's policy must be within
    the caller's, as for a new credential (the CI key does not know the open key's secret)."""
    _, client = ci_key
    open_key, _ = api_key_create(
        organization=organization, name="legacy", owner=owner, scopes=["orders:read"], actor=owner
    )
    before = state()
    refused(client.post(f"{KEYS}{open_key.key_id}/rotate/", {"overlap_hours": 1}, "application/json"), before)
    refused(client.post(f"{KEYS}{open_key.key_id}/move-to-m2m-app/", {}, "application/json"), before)

    # Bounded like the caller, both are its to do.
    kept, _ = api_key_create(
        organization=organization,
        name="kept",
        owner=owner,
        scopes=["orders:read"],
        actor=owner,
        allowed_ips=["10.7.0.0/16"],
        rate_limit=LIMIT,
    )
    rotated = client.post(f"{KEYS}{kept.key_id}/rotate/", {"overlap_hours": 1}, "application/json")
    assert rotated.status_code == 201, rotated.content


def test_an_applications_token_cannot_rotate_a_looser_application(organization, owner):
    pipeline, secret = m2m_app_create(
        organization=organization,
        name="pipeline",
        owner=owner,
        scopes=["m2m_apps:manage", "orders:read"],
        actor=owner,
        allowed_ips=CI_NETWORK,
    )
    open_app, _ = m2m_app_create(
        organization=organization, name="open", owner=owner, scopes=["orders:read"], actor=owner
    )
    minted = Client(REMOTE_ADDR=INSIDE).post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(pipeline.client_id, secret),
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {minted.json()['access_token']}", REMOTE_ADDR=INSIDE)
    refused(
        client.post(f"{APPS}{open_app.pk}/rotate-secret/", {"overlap_hours": 0}, "application/json"), state()
    )
