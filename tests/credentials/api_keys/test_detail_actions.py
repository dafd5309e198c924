"""A key's page offers what the service does: Revoke for an active, suspended or expired key (the
service revokes them all); Rotate and Move only for a working one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.governance.models import CredentialStatus, SuspensionReason
from credentials.governance.reviews import credential_suspend

pytestmark = pytest.mark.django_db


def _suspend(key, owner):
    credential_suspend(credential=key, actor=owner, reason=SuspensionReason.REVIEW_OVERDUE)


def _expire(key, owner):
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(days=3))


@pytest.mark.parametrize("make_state", [_suspend, _expire], ids=["suspended", "expired"])
def test_a_key_that_no_longer_works_can_be_revoked_from_its_page(owner_client, owner, make_key, make_state):
    key, _ = make_key(name="Orphan script")
    make_state(key, owner)
    page = owner_client.get(reverse("org-api-key-detail", args=["acme", key.key_id])).content.decode()
    revoke_url = reverse("org-api-key-revoke", args=["acme", key.key_id])
    assert f'href="{revoke_url}"' in page
    assert reverse("org-api-key-rotate", args=["acme", key.key_id]) not in page
    assert reverse("org-api-key-move", args=["acme", key.key_id]) not in page

    response = owner_client.post(revoke_url, {"reason": "no longer needed"})
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=key.pk).status == CredentialStatus.REVOKED


def test_a_working_key_still_offers_rotate_and_revoke_and_a_revoked_one_neither(
    owner_client, owner, make_key
):
    key, _ = make_key()
    detail = reverse("org-api-key-detail", args=["acme", key.key_id])
    page = owner_client.get(detail).content.decode()
    assert reverse("org-api-key-rotate", args=["acme", key.key_id]) in page
    assert reverse("org-api-key-revoke", args=["acme", key.key_id]) in page
    owner_client.post(reverse("org-api-key-revoke", args=["acme", key.key_id]), {"reason": "done"})
    page = owner_client.get(detail).content.decode()
    assert reverse("org-api-key-revoke", args=["acme", key.key_id]) not in page
