"""Periodic jobs: no notice or suspension for credentials that no longer work or that a review
cannot help, and a sweep re-checks its reason under the row lock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_rotate
from credentials.governance import reviews
from credentials.governance.models import Notice, SuspensionReason
from credentials.governance.ownership import credential_reassign_owner
from portal.models import AuditEvent, Membership
from portal.services.organizations import membership_remove

pytestmark = pytest.mark.django_db


def _rotated_pair(organization, member, review_due_at):
    """A key rotated with no overlap: the predecessor stopped working (expired) at once."""
    old, _ = api_key_create(organization=organization, name="nightly", owner=member, scopes=[], actor=member)
    ApiKey.objects.filter(pk=old.pk).update(review_due_at=review_due_at)
    old.refresh_from_db()
    new, _ = api_key_rotate(api_key=old, actor=member, overlap=timedelta(0))
    old.refresh_from_db()
    assert old.state == "expired" and new.state == "active"
    return old, new


def test_a_rotated_away_key_gets_no_review_due_notice_only_its_successor_does(
    organization, owner, member, scopes, django_capture_on_commit_callbacks
):
    # The review falls due in 5 days; the rotation (a month ago, say) kept the due date on both.
    old, new = _rotated_pair(organization, member, timezone.now() + timedelta(days=5))
    assert ApiKey.objects.get(pk=new.pk).review_due_at == ApiKey.objects.get(pk=old.pk).review_due_at
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")

    about = sorted(Notice.objects.filter(notice_type="review_due").values_list("object_id", flat=True))
    assert about == [new.pk], (
        f"review_due notices for {about}: the rotated-away key {old.pk} (state expired) is told to be "
        "reviewed too, and everyone gets two 'Review due' emails for one credential"
    )


def test_an_expired_api_key_is_not_suspended_or_announced_by_the_overdue_review_sweep(
    organization, owner, member, scopes, django_capture_on_commit_callbacks
):
    key, _ = api_key_create(
        organization=organization,
        name="ended last month",
        owner=member,
        scopes=[],
        actor=member,
        expires_at=timezone.now() + timedelta(days=1),
    )
    # It expired 30 days ago; its review fell due 20 days ago (grace 14 days).
    ApiKey.objects.filter(pk=key.pk).update(
        expires_at=timezone.now() - timedelta(days=30),
        review_due_at=timezone.now() - timedelta(days=20),
    )
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")

    key.refresh_from_db()
    subjects = [m.subject for m in mail.outbox]
    suspended_events = AuditEvent.objects.filter(action="credentials.api_key.suspended").count()
    assert (key.status, suspended_events, subjects) == ("active", 0, []), (
        f"an API key that expired 30 days ago was suspended ({key.status}, {suspended_events} audit "
        f"event(s)) and its people were emailed: {subjects}"
    )


def test_a_departed_members_expired_key_brings_no_owner_left_notice_or_orphan_suspension(
    organization, owner, member, scopes, django_capture_on_commit_callbacks
):
    old, new = _rotated_pair(organization, member, timezone.now() + timedelta(days=80))
    membership_remove(membership=Membership.objects.get(user=member, organization=organization), actor=owner)
    # The orphan grace (14 days) has passed for both.
    ApiKey.objects.filter(pk__in=[old.pk, new.pk]).update(orphaned_at=timezone.now() - timedelta(days=20))
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")

    old.refresh_from_db()
    about_old = list(Notice.objects.filter(object_id=old.pk).values_list("notice_type", flat=True))
    assert (old.status, about_old) == ("active", []), (
        f"the rotated-away (expired) key was {old.status} and announced: {about_old}"
    )


def test_the_overdue_sweep_does_not_suspend_a_credential_reviewed_after_it_was_listed(
    organization, owner, member, scopes, monkeypatch
):
    """The sweep lists overdue credentials, then suspends each under its lock: a review that lands
    between the two (the owner clicks "Still needed") must win, as the code's comment promises."""
    key, _ = api_key_create(organization=organization, name="n", owner=member, scopes=[], actor=member)
    ApiKey.objects.filter(pk=key.pk).update(review_due_at=timezone.now() - timedelta(days=20))

    real_suspend = reviews.credential_suspend

    def owner_reviews_first(*, credential, actor, reason, **checks):
        # The owner's review commits after the sweep read its candidates, before it takes the lock.
        reviews.credential_recertify(credential=ApiKey.objects.get(pk=credential.pk), actor=member)
        return real_suspend(credential=credential, actor=actor, reason=reason, **checks)

    monkeypatch.setattr(reviews, "credential_suspend", owner_reviews_first)
    reviews.credential_policies_apply()

    key.refresh_from_db()
    assert key.review_due_at > timezone.now() + timedelta(days=80)  # the review happened
    assert key.status == "active", (
        f"reviewed just now (next review {key.review_due_at:%Y-%m-%d}), yet suspended as "
        f"{key.suspension_reason}: the sweep never re-checks its reason under the lock"
    )


def test_the_orphan_sweep_does_not_suspend_a_credential_reassigned_after_it_was_listed(
    organization, owner, member, admin_user, scopes, monkeypatch
):
    key, _ = api_key_create(organization=organization, name="n", owner=member, scopes=[], actor=member)
    ApiKey.objects.filter(pk=key.pk).update(orphaned_at=timezone.now() - timedelta(days=20))

    real_suspend = reviews.credential_suspend

    def admin_reassigns_first(*, credential, actor, reason, **checks):
        credential_reassign_owner(
            credential=ApiKey.objects.get(pk=credential.pk), owner=admin_user, actor=owner
        )
        return real_suspend(credential=credential, actor=actor, reason=reason, **checks)

    monkeypatch.setattr(reviews, "credential_suspend", admin_reassigns_first)
    reviews.credential_policies_apply()

    key.refresh_from_db()
    assert key.orphaned_at is None and key.owner_id == admin_user.pk
    assert key.status == "active", f"reassigned to a member, yet suspended as {key.suspension_reason}"


def test_a_staff_suspended_key_gets_no_review_overdue_warning_it_cannot_act_on(
    organization, owner, member, scopes, django_capture_on_commit_callbacks
):
    """A manual (or leaked) suspension cannot be lifted by a review (credential_recertify refuses
    it), yet the overdue notice says "It will be suspended unless its owner reviews it soon"."""
    key, _ = api_key_create(organization=organization, name="held", owner=member, scopes=[], actor=member)
    reviews.credential_suspend(credential=key, actor=owner, reason=SuspensionReason.MANUAL)
    ApiKey.objects.filter(pk=key.pk).update(review_due_at=timezone.now() - timedelta(days=2))
    with pytest.raises(Exception):
        reviews.credential_recertify(credential=ApiKey.objects.get(pk=key.pk), actor=member)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")

    overdue = [m for m in mail.outbox if "Review overdue" in m.subject]
    assert overdue == [], overdue[0].body
