"""keys/verify reports the scopes a key may use now: its own, bounded by its owner's current role
(the authority rule), as whoami does."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.services import api_key_create
from portal.models import Membership, Role
from portal.services.organizations import membership_change_role, membership_remove
from tests.factories import ScopeFactory

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/keys/verify"
WHOAMI = "/api/v1/whoami"


def _bearer(secret: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.fixture
def wide_key(organization, owner, admin_user, scopes):
    for name in ("requests:decide", "webhooks:manage"):
        ScopeFactory(name=name)
    wide = ["orders:read", "api_keys:manage", "requests:decide", "webhooks:manage"]
    _key, secret = api_key_create(
        organization=organization, name="ops", owner=admin_user, scopes=wide, actor=admin_user
    )
    _v, verifier = api_key_create(
        organization=organization, name="verifier", owner=owner, scopes=["api_keys:verify"], actor=owner
    )
    return secret, verifier


def _verify(verifier: str, key: str) -> dict:
    response = _bearer(verifier).post(VERIFY, {"key": key}, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def test_verify_reports_scopes_bounded_by_a_demoted_owner(wide_key, owner, admin_user):
    secret, verifier = wide_key
    membership_change_role(membership=Membership.objects.get(user=admin_user), role=Role.MEMBER, actor=owner)
    whoami = sorted(_bearer(secret).get(WHOAMI).json()["scopes"])
    assert whoami == ["api_keys:manage", "orders:read"]
    body = _verify(verifier, secret)
    assert body["valid"] is True
    # whoami, token exchange and introspection drop the managers' scopes; keys/verify must too.
    assert body["scopes"] == whoami


def test_verify_reports_no_portal_scopes_for_a_removed_owner(wide_key, owner, admin_user):
    secret, verifier = wide_key
    membership_remove(membership=Membership.objects.get(user=admin_user), actor=owner)
    whoami = sorted(_bearer(secret).get(WHOAMI).json()["scopes"])
    assert whoami == ["orders:read"]
    assert _verify(verifier, secret)["scopes"] == whoami
