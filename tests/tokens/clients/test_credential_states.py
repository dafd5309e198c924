"""A client secret or public key is `expiring` ("Rotated … works until") only in a rotation's overlap.

An expiry alone (the organisation's maximum lifetime, a key's chosen expiry, the first secret of
an application moved from an expiring API key) leaves it `active`, shown as "Expires <date>".
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from credentials.governance.models import OrganizationPolicy
from tests.support.pem import pem_pair
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.clients.services import client_public_key_add, client_public_key_revoke, client_secret_rotate
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db

ROTATED = 'Rotated</span> <span class="status-note">works until'


def _page(client, application) -> str:
    url = reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": application.pk})
    return client.get(url).content.decode()


def _rest_statuses(client, application, member: str = "secrets") -> list[str]:
    return [
        row["status"] for row in client.get(f"/api/v1/orgs/acme/m2m-apps/{application.pk}/").json()[member]
    ]


@pytest.fixture
def app_under_max_lifetime(organization, make_app) -> M2MApplication:
    OrganizationPolicy.objects.update_or_create(
        organization=organization, defaults={"client_secret_max_lifetime_days": 90}
    )
    return make_app().application


def test_a_never_rotated_secret_with_a_policy_expiry_is_active(owner_client, app_under_max_lifetime):
    secret = app_under_max_lifetime.secrets.get()
    assert secret.expires_at is not None and secret.retired_at is None
    assert secret.state == "active"
    assert _rest_statuses(owner_client, app_under_max_lifetime) == ["active"]
    page = _page(owner_client, app_under_max_lifetime)
    assert "Rotated</span>" not in page
    assert f'Expires <time datetime="{secret.expires_at.isoformat()}"' in page
    assert f"{secret.expires_at:%Y-%m-%d %H:%M} UTC" in page


def test_a_rotated_secret_is_expiring_and_its_successor_active(owner_client, owner, app_under_max_lifetime):
    new, _ = client_secret_rotate(application=app_under_max_lifetime, actor=owner, overlap=timedelta(hours=2))
    old = app_under_max_lifetime.secrets.exclude(pk=new.pk).get()
    assert old.retired_at is not None and old.state == "expiring"
    assert new.expires_at is not None and new.state == "active"  # the policy's 90 days, not a rotation
    assert _rest_statuses(owner_client, app_under_max_lifetime) == ["active", "expiring"]
    page = _page(owner_client, app_under_max_lifetime)
    assert page.count("Rotated</span>") == 1
    assert f'works until <time datetime="{old.expires_at.isoformat()}"' in page
    assert f'Expires <time datetime="{new.expires_at.isoformat()}"' in page


def test_a_secret_that_stops_before_the_overlap_ends_is_retired_too(owner, app_under_max_lifetime):
    soon = timezone.now() + timedelta(hours=1)
    app_under_max_lifetime.secrets.update(expires_at=soon)
    new, _ = client_secret_rotate(
        application=app_under_max_lifetime, actor=owner, overlap=timedelta(hours=24)
    )
    old = app_under_max_lifetime.secrets.exclude(pk=new.pk).get()
    assert old.expires_at == soon  # its own, earlier end stays
    assert old.state == "expiring"


def test_the_first_secret_of_an_app_moved_from_an_expiring_key_is_active(owner_client, owner, make_key):
    key, _ = make_key(expires_at=timezone.now() + timedelta(days=20))
    move = api_key_move_to_m2m_app(api_key=key, actor=owner)
    secret = move.application.secrets.get()
    assert secret.expires_at == key.expires_at
    assert secret.state == "active"
    assert _rest_statuses(owner_client, move.application) == ["active"]
    assert "Rotated</span>" not in _page(owner_client, move.application)


def test_a_public_key_is_expiring_only_when_a_new_key_retires_it(owner_client, owner, make_app):
    application = make_app(auth_method="private_key_jwt").application
    chosen = timezone.now() + timedelta(days=30)
    first = client_public_key_add(
        application=application, jwk_or_pem=pem_pair()[1], actor=owner, expires_at=chosen
    )
    assert first.state == "active"
    # A second key without an overlap retires nothing: both stay active.
    second = client_public_key_add(application=application, jwk_or_pem=pem_pair()[1], actor=owner)
    assert _rest_statuses(owner_client, application, "public_keys") == ["active", "active"]
    assert "Rotated</span>" not in _page(owner_client, application)
    client_public_key_revoke(public_key=second, actor=owner)  # at most two live keys
    third = client_public_key_add(
        application=application, jwk_or_pem=pem_pair()[1], actor=owner, overlap=timedelta(hours=3)
    )
    first.refresh_from_db()
    assert first.retired_at is not None and first.state == "expiring"
    assert third.state == "active"
    assert _rest_statuses(owner_client, application, "public_keys") == ["active", "revoked", "expiring"]
    assert _page(owner_client, application).count(ROTATED) == 1
