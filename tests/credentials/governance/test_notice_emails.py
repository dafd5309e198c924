"""Credential notices by e-mail: nobody who left hears about a credential; the wording fits its state."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from credentials.api_keys.services import api_key_create
from credentials.governance.approvals import credential_request_create, credential_request_deny
from credentials.governance.models import CredentialRequest, CredentialStatus, SuspensionReason
from credentials.governance.org_policy import policy_update
from credentials.governance.reviews import credential_recertify, credential_suspend
from portal.models import Membership
from portal.services.organizations import membership_remove

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _base_url(settings):
    settings.PORTAL_BASE_URL = "https://portal.example"


def _remove(user, organization, actor):
    membership_remove(membership=Membership.objects.get(user=user, organization=organization), actor=actor)


def _told() -> set[str]:
    return {address for message in mail.outbox for address in message.to}


@pytest.mark.parametrize("reason", [SuspensionReason.MANUAL, SuspensionReason.LEAKED])
def test_a_suspended_notice_says_how_to_restore_it_for_its_reason(
    kit, organization, owner, member, reason, django_capture_on_commit_callbacks
):
    # A review does not lift a manual or leak suspension: the notice must not advise one.
    credential, _ = kit.create(owner=member, name="held")
    credential_suspend(credential=credential, actor=owner, reason=reason)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    (message,) = [m for m in mail.outbox if "Suspended" in m.subject]

    with pytest.raises(ValidationError):  # following the advice fails
        credential_recertify(credential=kit.reload(credential), actor=member)
    assert "review it to restore it" not in message.body, message.body


def test_against_policy_notice_is_not_sent_to_a_former_member(
    organization, owner, member, scopes, django_capture_on_commit_callbacks
):
    key, _ = api_key_create(
        organization=organization,
        name="live job",
        owner=member,
        scopes=["orders:read"],
        actor=member,
        environment="live",
    )
    _remove(member, organization, owner)  # the key is orphaned: no longer the former member's
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        policy_update(organization=organization, actor=owner, new_live_api_keys="forbidden")
    key.refresh_from_db()
    assert key.policy_flagged_at is not None
    assert member.email not in _told(), [(m.subject, m.to) for m in mail.outbox]
    assert owner.email in _told()  # the managers hear of it instead


def test_decision_notice_is_not_sent_to_a_former_member_who_owned_the_credential(
    kit, require_approval, organization, owner, admin_user, member, django_capture_on_commit_callbacks
):
    require_approval(approve_scope_increases=True)
    credential, _ = kit.create(owner=member, scopes=["orders:read"])
    request = credential_request_create(  # an admin asks for more scopes on the member's credential
        credential=credential,
        requester=admin_user,
        request_type="scope_increase",
        requested_scopes=["orders:read", "billing:read"],
        justification="invoices",
    )
    _remove(member, organization, owner)
    request = CredentialRequest.objects.get(pk=request.pk)
    assert request.state == "pending"  # the leaver did not make it, so it still waits
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        credential_request_deny(request=request, actor=owner, comment="no")
    assert admin_user.email in _told()
    assert member.email not in _told(), [(m.subject, m.to) for m in mail.outbox]


def test_overdue_and_orphan_notices_do_not_say_it_still_works_when_the_same_run_suspended_it(
    kit, organization, owner, admin_user, member, django_capture_on_commit_callbacks
):
    # A grace of 0 days (or cron down past the grace): the run suspends, then emails; the notice
    # says the credential was suspended, not that it still works.
    policy_update(organization=organization, actor=owner, overdue_grace_days=0, orphan_grace_days=0)
    late, _ = kit.create(owner=member, name="late")
    kit.model.objects.filter(pk=late.pk).update(review_due_at=timezone.now() - timedelta(minutes=5))
    left, _ = kit.create(owner=admin_user, name="left")
    _remove(admin_user, organization, owner)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    assert kit.reload(late).status == CredentialStatus.SUSPENDED
    assert kit.reload(left).status == CredentialStatus.SUSPENDED
    overdue = [m.body for m in mail.outbox if "Review overdue" in m.subject]
    orphaned = [m.body for m in mail.outbox if "Owner left" in m.subject]
    assert overdue and orphaned
    wrong = [b for b in overdue if "will be suspended unless" in b]
    wrong += [b for b in orphaned if "It still works" in b]
    assert not wrong, wrong


def test_notices_section_lists_every_notice_type():
    template = (ROOT / "templates/credentials/governance/email/notice.txt").read_text()
    sent = set(re.findall(r'notice_type == "([a-z_0-9]+)"', template))
    assert "against_policy" in sent
    docs = (ROOT / "docs/governance.md").read_text()
    section = docs.split("## Notices and suspension (cron)", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z_0-9]+)`", section))
    for grouped in re.findall(r"`approval_([a-z/]+)`", section):
        named |= {f"approval_{word}" for word in grouped.split("/")}
    assert sent <= named, sorted(sent - named)
