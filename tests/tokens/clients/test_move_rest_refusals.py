"""REST refusals of a move a customer can hit: a clear answer, never a 500, nothing created."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_rotate
from portal.models import Membership, Role
from portal.services.organizations import membership_change_role, membership_delete
from tests.factories import ScopeFactory
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


def move(client, key_id: str):
    return client.post(
        f"/api/v1/orgs/acme/api-keys/{key_id}/move-to-m2m-app/", {}, content_type="application/json"
    )


def test_an_expired_key_is_409_inactive(owner_client, make_key):
    api_key, _ = make_key(name="old", expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = move(owner_client, api_key.key_id)
    assert response.status_code == 409 and response.json()["code"] == "inactive", response.content
    assert not M2MApplication.objects.exists()


def test_a_rotated_key_in_its_overlap_is_409_rotated(owner_client, make_key, owner):
    api_key, _ = make_key(name="old")
    api_key_rotate(api_key=api_key, actor=owner, overlap=timedelta(hours=2))
    response = move(owner_client, api_key.key_id)
    assert response.status_code == 409 and response.json()["code"] == "rotated", response.content
    assert not M2MApplication.objects.exists()


def test_an_orphaned_key_is_refused_on_its_owner(owner_client, organization, member, make_key, owner):
    api_key, _ = make_key(name="members", owner=member, actor=member)
    membership_delete(
        membership=Membership.objects.get(organization=organization, user=member), actor=owner, extra={}
    )
    response = move(owner_client, api_key.key_id)
    assert response.status_code == 400 and "owner" in response.json(), response.content
    assert not M2MApplication.objects.exists()


def test_a_key_its_demoted_owner_may_no_longer_hold_is_refused_on_its_scopes(
    owner_client, organization, owner, admin_user, make_key
):
    ScopeFactory(name="webhooks:manage")
    api_key, _ = make_key(
        name="admin tool", owner=admin_user, actor=admin_user, scopes=("webhooks:manage", "orders:read")
    )
    membership_change_role(
        membership=Membership.objects.get(organization=organization, user=admin_user),
        role=Role.MEMBER,
        actor=owner,
    )
    response = move(owner_client, api_key.key_id)
    assert response.status_code == 400 and "scopes" in response.json(), response.content
    assert not M2MApplication.objects.exists()
