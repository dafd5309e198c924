"""A move keeps the key's review schedule: a key overdue for review does not escape it by moving.

What was wrong: the application a key moved to always got a fresh review date (the policy's
interval from now), so a key weeks overdue for its periodic review left the overdue queue by
being moved, while a rotation keeps the schedule ("rotation is not a review"). The application
now gets the key's review date when it comes before the policy's, and the key's last review.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.governance.approvals import credential_request_approve, credential_secret_issue
from credentials.governance.org_policy import policy_update, review_due_from
from tokens.clients.moves import api_key_move_to_m2m_app

pytestmark = pytest.mark.django_db


def moved(api_key, owner, **review):
    ApiKey.objects.filter(pk=api_key.pk).update(**review)
    application = api_key_move_to_m2m_app(api_key=ApiKey.objects.get(pk=api_key.pk), actor=owner).application
    application.refresh_from_db()
    return application


def test_a_key_overdue_for_review_moves_overdue_with_its_last_review(make_key, owner, admin_user):
    api_key, _ = make_key(name="overdue")
    overdue, reviewed = timezone.now() - timedelta(days=20), timezone.now() - timedelta(days=200)
    application = moved(
        api_key, owner, review_due_at=overdue, last_reviewed_at=reviewed, last_reviewed_by=admin_user
    )
    assert application.review_due_at == overdue and application.review_overdue
    assert (application.last_reviewed_at, application.last_reviewed_by) == (reviewed, admin_user)


def test_the_policys_interval_still_bounds_the_first_review(organization, make_key, owner):
    """A key due later than an application would be today (a longer interval for keys) gets the
    application's date: the move never puts a review off."""
    api_key, _ = make_key(name="due late")
    before = timezone.now()
    application = moved(api_key, owner, review_due_at=timezone.now() + timedelta(days=3650))
    assert before < application.review_due_at <= review_due_from(organization, "m2m_app")
    never_scheduled, _ = make_key(name="never scheduled")
    assert moved(never_scheduled, owner, review_due_at=None).review_due_at > before


def test_a_pending_move_keeps_the_keys_review_date_once_approved(organization, owner, admin_user, make_key):
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    api_key, _ = make_key(name="overdue")
    overdue = timezone.now() - timedelta(days=20)
    ApiKey.objects.filter(pk=api_key.pk).update(review_due_at=overdue)
    move = api_key_move_to_m2m_app(
        api_key=ApiKey.objects.get(pk=api_key.pk), actor=owner, justification="switching to OAuth"
    )
    credential_request_approve(request=move.request, actor=admin_user)
    application, _secret = credential_secret_issue(credential=move.application, actor=owner)
    application.refresh_from_db()
    assert application.review_due_at == overdue
