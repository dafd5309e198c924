"""A rotation acts on the key as its caller was authorised against: a key given to another owner
between the authority check and the service's lock is refused (`conflict`), and its successor's
secret is never handed to someone who may no longer rotate it (the authority rule).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from credentials import rest
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_rotate
from credentials.governance.ownership import credential_reassign_owner

pytestmark = pytest.mark.django_db


def test_a_member_never_rotates_a_key_that_stopped_being_theirs_meanwhile(
    monkeypatch, owner, admin_user, member, member_client, make_key
):
    """The REST rotation checks the owner as read; a reassignment committed before the service locks
    the key (made here right after the view's last check) must not give the member its successor."""
    key, _ = make_key(name="was theirs", owner=member)
    real = rest.check_policy_within_caller

    def checked_then_reassigned(*args, **kwargs):
        real(*args, **kwargs)
        credential_reassign_owner(credential=ApiKey.objects.get(pk=key.pk), owner=owner, actor=admin_user)

    monkeypatch.setattr(rest, "check_policy_within_caller", checked_then_reassigned)
    response = member_client.post(
        f"/api/v1/orgs/acme/api-keys/{key.key_id}/rotate/",
        {"overlap_hours": 1},
        content_type="application/json",
    )
    assert (response.status_code, response.json()["code"]) == (409, "conflict"), response.json()
    assert "successor" not in response.json()
    assert not ApiKey.objects.filter(replaces=key).exists()


def test_the_service_refuses_a_key_whose_owner_changed_since_it_was_read(owner, admin_user, member, make_key):
    key, _ = make_key(name="was theirs", owner=member)
    credential_reassign_owner(credential=ApiKey.objects.get(pk=key.pk), owner=owner, actor=admin_user)
    with pytest.raises(ValidationError) as refused:
        api_key_rotate(api_key=key, actor=member, overlap=timedelta(hours=1))
    assert refused.value.code == "conflict"
    assert not ApiKey.objects.filter(replaces=key).exists()
