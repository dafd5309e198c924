"""`send_credential_notices`: each notice once, to the owner and the organisation's admins, with a link."""

from __future__ import annotations

import json
import logging
import smtplib
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from credentials.governance import notices
from credentials.governance.models import Notice, SuspensionReason
from credentials.governance.notices import credential_notices_send, notice_send_once
from credentials.governance.ownership import credentials_orphan
from credentials.governance.reviews import credential_suspend
from portal.models import AuditEvent, Membership
from portal.services.organizations import membership_remove
from tests.support.threads import run_together
from tokens.models import ClientSecret

pytestmark = pytest.mark.django_db


def _expire_in(kit, credential, delta):
    when = timezone.now() + delta
    if kit.key == "api_key":
        kit.model.objects.filter(pk=credential.pk).update(expires_at=when)
    else:
        ClientSecret.objects.filter(application=credential).update(expires_at=when)


@pytest.fixture
def due_credentials(kit, owner, member, admin_user, settings):
    settings.PORTAL_BASE_URL = "https://portal.example"
    made = {}
    made["expiring_14d"], _ = kit.create(owner=member, name="expires in ten days")
    _expire_in(kit, made["expiring_14d"], timedelta(days=10))
    made["expiring_3d"], _ = kit.create(owner=member, name="expires in two days")
    _expire_in(kit, made["expiring_3d"], timedelta(days=2))
    made["review_due"], _ = kit.create(owner=member, name="review soon")
    kit.model.objects.filter(pk=made["review_due"].pk).update(
        review_due_at=timezone.now() + timedelta(days=5)
    )
    made["review_overdue"], _ = kit.create(owner=member, name="review late")
    kit.model.objects.filter(pk=made["review_overdue"].pk).update(
        review_due_at=timezone.now() - timedelta(days=1)
    )
    made["suspended"], _ = kit.create(owner=member, name="suspended one")
    credential_suspend(credential=made["suspended"], actor=owner, reason=SuspensionReason.MANUAL)
    made["quiet"], _ = kit.create(owner=member, name="nothing to say")
    return made


def test_each_notice_is_sent_once(
    kit, due_credentials, organization, owner, member, admin_user, django_capture_on_commit_callbacks
):
    leaver_credential, _ = kit.create(owner=admin_user, name="orphan")
    credentials_orphan(organization=organization, user=admin_user, actor=owner)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    first = sorted(m.subject for m in mail.outbox)
    expected = {
        "Expires within 14 days": "expires in ten days",
        "Expires within 3 days": "expires in two days",
        "Review due": "review soon",
        "Review overdue": "review late",
        "Suspended": "suspended one",
        "Owner left": "orphan",
    }
    assert len(first) == len(expected), first
    for prefix, name in expected.items():
        assert any(prefix in s and name in s for s in first), (prefix, first)
    assert not any("nothing to say" in s for s in first)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
        call_command("send_credential_notices")
    assert sorted(m.subject for m in mail.outbox) == first  # nothing new
    assert Notice.objects.count() == len(expected)

    review = next(m for m in mail.outbox if "Review due" in m.subject)
    assert set(review.to) == {owner.email, admin_user.email, member.email}
    assert "https://portal.example/orgs/acme/" in review.body


def test_a_new_due_date_brings_a_new_notice(kit, member, django_capture_on_commit_callbacks):
    credential, _ = kit.create(owner=member)
    kit.model.objects.filter(pk=credential.pk).update(review_due_at=timezone.now() + timedelta(days=5))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    assert len(mail.outbox) == 1
    # After a review the next due date is another period: another notice when it comes near.
    kit.model.objects.filter(pk=credential.pk).update(review_due_at=timezone.now() + timedelta(days=6))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    assert len(mail.outbox) == 2


def test_approval_requested_notice_goes_to_the_other_admins_once(
    kit, require_approval, member, member_client, owner, admin_user, django_capture_on_commit_callbacks
):
    require_approval()
    with django_capture_on_commit_callbacks(execute=True):
        member_client.post(kit.create_url, kit.create_form(owner=member))
    assert len(mail.outbox) == 1
    assert set(mail.outbox[0].to) == {owner.email, admin_user.email}
    assert "/orgs/acme/approvals/" in mail.outbox[0].body and "Nightly export" in mail.outbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    assert len(mail.outbox) == 1


def test_a_rotated_key_ending_its_overlap_gets_no_expiry_notice(
    organization, member, scopes, django_capture_on_commit_callbacks
):
    from credentials.api_keys.services import api_key_create, api_key_rotate

    key, _ = api_key_create(organization=organization, name="rotated", owner=member, scopes=[], actor=member)
    api_key_rotate(api_key=key, actor=member, overlap=timedelta(hours=24))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    assert mail.outbox == []


def test_a_name_with_a_line_break_still_gets_its_notice(
    organization, owner, scopes, django_capture_on_commit_callbacks
):
    """A mail header refuses a line break: the subject is one line whatever the credential's name
    (one stored before names were checked: credentials.names refuses a line break now)."""
    key, _secret = api_key_create(
        organization=organization, name="nightly export", owner=owner, scopes=[], actor=owner
    )
    ApiKey.objects.filter(pk=key.pk).update(name="nightly\nexport")
    key.refresh_from_db()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert notice_send_once(credential=key, notice_type="leaked", period="p1", recipients=[owner.email])
    assert len(mail.outbox) == 1
    assert "nightly export" in mail.outbox[0].subject and "\n" not in mail.outbox[0].subject


def test_a_former_member_is_not_told_about_the_credential_they_left_behind(
    kit, organization, owner, member, django_capture_on_commit_callbacks
):
    credential, _ = kit.create(owner=member, name="left behind")
    _expire_in(kit, credential, timedelta(days=2))
    membership_remove(membership=Membership.objects.get(user=member, organization=organization), actor=owner)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    told = {address for message in mail.outbox for address in message.to}
    assert owner.email in told
    assert member.email not in told


def test_a_notice_that_failed_during_a_mail_outage_is_sent_by_the_next_run(
    kit, member, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    """Cron runs every 10 minutes: an SMTP hiccup during one run must not lose the reminder for good."""
    credential, _ = kit.create(owner=member, name="review soon")
    kit.model.objects.filter(pk=credential.pk).update(review_due_at=timezone.now() + timedelta(days=5))
    real = notices.send_mail

    def outage(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(notices, "send_mail", outage)
    with (
        caplog.at_level(logging.WARNING, logger="credentials.governance.notices"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        call_command("send_credential_notices")
    assert mail.outbox == []
    assert any("Could not send the review_due notice" in r.getMessage() for r in caplog.records)

    monkeypatch.setattr(notices, "send_mail", real)  # the mail server is back
    Notice.objects.update(created_at=timezone.now() - timedelta(minutes=10))  # the next run, 10 minutes on
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")  # sent now: not again
    (subject,) = [m.subject for m in mail.outbox if "review soon" in m.subject]
    assert "Review due" in subject


def test_the_same_rules_brought_back_flag_a_credential_again_and_its_owner_is_told_again(
    owner_client, make_app, django_capture_on_commit_callbacks
):
    make_app(name="billing")  # no rate limit: above any ceiling
    ceiling = {"requests": 100, "per_seconds": 60}

    def rules(**values) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            response = owner_client.patch(
                "/api/v1/orgs/acme/policy/runtime/", json.dumps(values), content_type="application/json"
            )
        assert response.status_code == 200, response.content
        return response.json()["flagged_credentials"]

    assert rules(max_rate_limit=ceiling) == 1
    assert rules(max_rate_limit=None) == 0  # allowed again: the flag is cleared
    assert rules(max_rate_limit=ceiling) == 1  # a new flag
    assert rules(require_allowed_ips_for_live=True) == 1  # still flagged, not newly: not told again
    assert AuditEvent.objects.filter(action__endswith=".policy_flagged").count() == 2
    assert len([m for m in mail.outbox if "Against the new policy" in m.subject]) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_three_runs_at_once_send_each_notice_once(require_postgres, kit, member):
    for i in range(6):
        credential, _ = kit.create(owner=member, name=f"due {i}")
        kit.model.objects.filter(pk=credential.pk).update(review_due_at=timezone.now() + timedelta(days=5))
    barrier = threading.Barrier(3)

    def run():
        barrier.wait(timeout=10)
        return credential_notices_send()

    results = run_together(("a", run), ("b", run), ("c", run))
    assert all(isinstance(v, int) for v in results.values()), results
    assert sum(results.values()) == 6, results
    assert Notice.objects.count() == 6
    assert len(mail.outbox) == 6, [m.subject for m in mail.outbox]
