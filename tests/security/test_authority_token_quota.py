"""An application's token quota is part of its width, like its allowlist and rate limit (BRIEF.md, "The
authority rule"; docs/security.md): a token of an application held to a quota cannot lift that quota,
nor make, open or rotate an application whose quota lets it get more tokens in some hour or day.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import ScopeFactory, make_api_key, make_m2m_app
from tests.security.authority import state
from tests.tokens.conftest import basic
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db

APPS = "/api/v1/orgs/acme/m2m-apps/"
QUOTA = {"per_hour": 10, "per_day": None, "mode": "enforce"}
NO_QUOTA = {"per_hour": None, "per_day": None, "mode": "enforce"}


@pytest.fixture(autouse=True)
def catalogue(db):
    for name in ("m2m_apps:manage", "orders:read"):
        ScopeFactory(name=name)


def _bearer(application: M2MApplication, secret: str) -> Client:
    minted = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(application.client_id, secret),
    )
    assert minted.status_code == 200, minted.content
    return Client(HTTP_AUTHORIZATION=f"Bearer {minted.json()['access_token']}")


@pytest.fixture
def bounded(organization, owner):
    """An automation application held to 10 tokens an hour, and a client holding one of its tokens."""
    application, secret = make_m2m_app(
        organization, owner, name="automation", scopes=["m2m_apps:manage", "orders:read"], token_quota=QUOTA
    )
    return application, _bearer(application, secret)


def _refused(response, before) -> None:
    assert response.status_code == 403, (response.status_code, response.content)
    assert response.json()["code"] == "exceeds_credential", response.json()
    assert state() == before, "a refusal changed something"


def _patch(client, path, body):
    return client.patch(path, body, "application/json")


@pytest.mark.parametrize(
    "token_quota",
    [
        None,  # removed: the global default, or nothing at all
        {"per_hour": 11},  # raised
        {"per_hour": None, "per_day": 240},  # the same 240 a day, but all of it in one hour
        {"mode": "log_only"},  # issued past it
    ],
)
def test_an_application_cannot_lift_its_own_quota_with_its_own_token(bounded, token_quota):
    application, client = bounded
    _refused(_patch(client, f"{APPS}{application.pk}/", {"token_quota": token_quota}), state())
    application.refresh_from_db()
    assert (application.tokens_per_hour, application.token_quota_mode) == (10, "enforce")


def test_an_application_may_tighten_its_own_quota(bounded):
    application, client = bounded
    tighter = {"per_hour": 5, "per_day": 100, "mode": "enforce"}
    response = _patch(client, f"{APPS}{application.pk}/", {"token_quota": tighter})
    assert response.status_code == 200, response.content
    assert response.json()["token_quota"] == tighter
    # Tightened it stays: the old quota is now looser than the application itself.
    _refused(_patch(client, f"{APPS}{application.pk}/", {"token_quota": QUOTA}), state())


def test_an_application_cannot_make_an_application_with_a_looser_quota(bounded):
    _application, client = bounded
    before = state()
    for extra in (
        {},  # an omitted quota counts as none
        {"token_quota": None},
        {"token_quota": {"per_day": 240}},  # 240 a day, as many as the caller, but all in one hour
    ):
        _refused(
            client.post(APPS, {"name": "escape", "scopes": ["orders:read"], **extra}, "application/json"),
            before,
        )

    within = client.post(
        APPS,
        {"name": "child", "scopes": ["orders:read"], "token_quota": {"per_hour": 5, "per_day": 100}},
        "application/json",
    )
    assert within.status_code == 201, within.content
    assert within.json()["token_quota"] == {"per_hour": 5, "per_day": 100, "mode": "enforce"}


def test_an_application_may_tighten_a_looser_application_but_not_open_or_rotate_it(
    bounded, organization, owner
):
    _application, client = bounded
    open_app, _ = make_m2m_app(organization, owner, name="open", scopes=["orders:read"])
    _refused(
        client.post(f"{APPS}{open_app.pk}/rotate-secret/", {"overlap_hours": 0}, "application/json"), state()
    )

    # Looser than the caller still, but tighter than it was: nothing gets looser.
    response = _patch(client, f"{APPS}{open_app.pk}/", {"token_quota": {"per_hour": 100}})
    assert response.status_code == 200, response.content
    _refused(_patch(client, f"{APPS}{open_app.pk}/", {"token_quota": None}), state())


def test_a_key_is_not_bounded_by_a_quota(organization, owner):
    """An API key mints no tokens: it has no quota to bound an application's."""
    _row, key = make_api_key(
        organization, owner, name="automation", scopes=["m2m_apps:manage", "orders:read"]
    )
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
        APPS, {"name": "plain", "scopes": ["orders:read"]}, "application/json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["token_quota"] == NO_QUOTA
