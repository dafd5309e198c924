"""Staff restore a suspended credential: the next policy run does not suspend it again at once (the
orphan or review grace starts anew)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.governance import reviews
from credentials.governance.models import CredentialStatus
from credentials.governance.ownership import credentials_orphan
from credentials.governance.reviews import credential_policies_apply, credential_restore
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
    reviews.credential_restore(credential=key, actor=staff, as_staff=True)
    assert ApiKey.objects.get(pk=key.pk).status == "active"

    # `send_credential_notices` / `apply_credential_policies` run from cron every few minutes.
    again = reviews.credential_policies_apply()
    key.refresh_from_db()
    assert not again and key.status == "active", (
        f"restored by staff, suspended again minutes later ({key.suspension_reason}); "
        f"{AuditEvent.objects.filter(action='credentials.api_key.suspended').count()} suspensions"
    )


# A credential whose owner left and that nobody reviewed carries both marks: a restore restarted
# only the grace of the suspension's own reason, and the next run suspended it again at once for
# the other (docs/governance.md: "only once the new grace has passed, not on its next run").


def test_restoring_an_orphan_suspension_is_not_undone_by_the_next_run(organization, owner, member, make_key):
    key, _ = make_key(owner=member, name="left behind")
    credentials_orphan(organization=organization, user=member, actor=owner)
    long_ago = timezone.now() - timedelta(days=20)
    # Orphaned 20 days ago, and its review fell due meanwhile (also 20 days ago): both graces (14) over.
    ApiKey.objects.filter(pk=key.pk).update(orphaned_at=long_ago, review_due_at=long_ago)
    assert [c.suspension_reason for c in credential_policies_apply()] == ["orphaned"]

    credential_restore(credential=ApiKey.objects.get(pk=key.pk), actor=owner)  # the Restore button
    assert ApiKey.objects.get(pk=key.pk).status == CredentialStatus.ACTIVE

    # The docs: "the policy suspends it again only once the new grace has passed, not on its next run".
    again = credential_policies_apply()
    assert again == [], f"suspended again at once, as {again[0].suspension_reason}"
    assert AuditEvent.objects.filter(action="credentials.api_key.suspended").count() == 1


def test_restoring_a_review_suspension_is_not_undone_by_the_next_run(organization, owner, member, make_key):
    key, _ = make_key(owner=member, name="unreviewed")
    ApiKey.objects.filter(pk=key.pk).update(review_due_at=timezone.now() - timedelta(days=30))
    assert [c.suspension_reason for c in credential_policies_apply()] == ["review_overdue"]
    credentials_orphan(organization=organization, user=member, actor=owner)  # then its owner left
    ApiKey.objects.filter(pk=key.pk).update(orphaned_at=timezone.now() - timedelta(days=20))

    credential_restore(credential=ApiKey.objects.get(pk=key.pk), actor=owner)
    again = credential_policies_apply()
    assert again == [], f"suspended again at once, as {again[0].suspension_reason}"


def test_the_restore_message_names_both_tasks(organization, owner, member, owner_client, make_key):
    key, _ = make_key(owner=member, name="left behind")
    credentials_orphan(organization=organization, user=member, actor=owner)
    long_ago = timezone.now() - timedelta(days=20)
    ApiKey.objects.filter(pk=key.pk).update(orphaned_at=long_ago, review_due_at=long_ago)
    credential_policies_apply()
    response = owner_client.post(f"/orgs/acme/api-keys/{key.key_id}/restore/", follow=True)
    shown = response.content.decode()
    assert "Its owner has still left: assign a new owner within 14 days and review it within" in shown
