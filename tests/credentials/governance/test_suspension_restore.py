"""Staff restore a suspended credential: the next policy run does not suspend it again at once (the
orphan or review grace starts anew)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.governance import reviews
from portal.models import AuditEvent
from tests.factories import UserFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("reason", ["review_overdue", "orphaned"])
def test_a_staff_restore_is_not_undone_by_the_next_policy_run(organization, owner, scopes, reason):
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    key, _ = make_api_key(organization, owner)
    long_ago = timezone.now() - timedelta(days=60)
    if reason == "review_overdue":
        ApiKey.objects.filter(pk=key.pk).update(review_due_at=long_ago)
    else:
        ApiKey.objects.filter(pk=key.pk).update(orphaned_at=long_ago)
    assert [k.pk for k in reviews.credential_policies_apply()] == [key.pk]
    key.refresh_from_db()
    assert key.status == "suspended" and key.suspension_reason == reason

    # Staff lift the suspension from the admin (the "Restore selected" action calls this).
    reviews.credential_restore(credential=key, actor=staff)
    assert ApiKey.objects.get(pk=key.pk).status == "active"

    # `send_credential_notices` / `apply_credential_policies` run from cron every few minutes.
    again = reviews.credential_policies_apply()
    key.refresh_from_db()
    assert not again and key.status == "active", (
        f"restored by staff, suspended again minutes later ({key.suspension_reason}); "
        f"{AuditEvent.objects.filter(action='credentials.api_key.suspended').count()} suspensions"
    )
