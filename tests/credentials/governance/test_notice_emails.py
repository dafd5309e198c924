"""Credential notices by e-mail: only those who may act hear; the wording fits its state; links work."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from credentials.api_keys.services import api_key_create
from credentials.governance.approvals import (
    credential_request_approve,
    credential_request_create,
    credential_request_deny,
)
from credentials.governance.models import CredentialRequest, CredentialStatus, SuspensionReason
from credentials.governance.org_policy import policy_update
from credentials.governance.reviews import credential_recertify, credential_suspend
from credentials.leaks.services import ReportedToken, leak_report_receive
from portal.models import Membership, Role, User
from portal.services.organizations import membership_remove
from tests.factories import MembershipFactory, UserFactory
from tokens.federation.services import federated_identity_create
from tokens.models import FederatedIdentity

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


def test_the_approval_request_e_mail_does_not_ask_the_credentials_owner_who_may_not_decide(
    kit, require_approval, organization, owner, admin_user, django_capture_on_commit_callbacks
):
    second_admin = MembershipFactory(
        organization=organization, role=Role.ADMIN, user=UserFactory(email="admin2@acme.test")
    ).user
    require_approval(approve_scope_increases=True)
    credential, _ = kit.create(owner=owner, scopes=["orders:read"], name="owners job")
    with django_capture_on_commit_callbacks(execute=True):
        request = credential_request_create(  # an admin asks for more scopes on the owner's credential
            credential=credential,
            requester=admin_user,
            request_type="scope_increase",
            requested_scopes=["orders:read", "billing:read"],
            justification="invoices",
        )
    (message,) = [m for m in mail.outbox if "Approval requested" in m.subject]
    # "Approve or deny it" goes only to those the four-eyes rule lets decide.
    with pytest.raises(ValidationError) as refused, transaction.atomic():
        credential_request_approve(request=request, actor=owner)
    assert refused.value.code == "four_eyes"
    assert sorted(message.to) == [second_admin.email], message.to


def test_a_run_that_suspends_an_overdue_or_orphaned_credential_sends_one_notice_saying_so(
    kit, organization, owner, admin_user, member, django_capture_on_commit_callbacks
):
    # A grace of 0 days (or cron down past the grace): the run suspends, then emails. One event,
    # one e-mail: "Suspended", with how to restore it; never an overdue (orphan) notice that says
    # it still works, nor a second e-mail about it, in this run or a later one.
    policy_update(organization=organization, actor=owner, overdue_grace_days=0, orphan_grace_days=0)
    late, _ = kit.create(owner=member, name="late")
    kit.model.objects.filter(pk=late.pk).update(review_due_at=timezone.now() - timedelta(minutes=5))
    left, _ = kit.create(owner=admin_user, name="left")
    _remove(admin_user, organization, owner)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    assert kit.reload(late).status == kit.reload(left).status == CredentialStatus.SUSPENDED
    (late_notice,) = [m for m in mail.outbox if "“late”" in m.subject]
    (left_notice,) = [m for m in mail.outbox if "“left”" in m.subject]
    assert "Suspended" in late_notice.subject and "by reviewing it" in late_notice.body
    assert "Suspended" in left_notice.subject and "assigning a new owner" in left_notice.body
    assert admin_user.email not in left_notice.to


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


def _notice_of(subject: str) -> str:
    """Return the notice a subject names: "[Acme Inc] Review due: API key “x”" -> "Review due"."""
    return subject.split("] ", 1)[1].split(":", 1)[0]


def _links_answer(*, members_only: bool = False) -> list[tuple[str, str, str, int]]:
    """Follow every portal link of every e-mail as each of its recipients; return what each got."""
    answers = []
    for message in mail.outbox:
        for address in message.to:
            user = User.objects.get(email=address)
            if members_only and not Membership.objects.filter(user=user).exists():
                continue  # told before they left
            client = Client()
            client.force_login(user)
            for link in re.findall(r"https?://\S+", message.body):
                if "github.com" in link:
                    continue  # where a leaked secret was found
                assert link.startswith("https://portal.example/"), link
                status = client.get(link.removeprefix("https://portal.example")).status_code
                answers.append((message.subject, address, link, status))
    return answers


def test_every_notice_link_resolves_for_every_recipient(
    kit, require_approval, organization, owner, admin_user, member, django_capture_on_commit_callbacks
):
    leaked, secret = kit.create(owner=member, name="leaky")
    overdue, _ = kit.create(owner=member, name="late")
    kit.model.objects.filter(pk=overdue.pk).update(review_due_at=timezone.now() - timedelta(days=1))
    soon, _ = kit.create(owner=member, name="soon")
    kit.model.objects.filter(pk=soon.pk).update(review_due_at=timezone.now() + timedelta(days=3))
    held, _ = kit.create(owner=member, name="held")
    credential_suspend(credential=held, actor=owner, reason=SuspensionReason.MANUAL)
    kit.create(owner=admin_user, name="left")
    wider, _ = kit.create(owner=member, name="wider", scopes=["orders:read"])
    with django_capture_on_commit_callbacks(execute=True):
        leak_report_receive(reported=ReportedToken(token=secret, token_type="t", url="https://github.com/x"))
        _remove(admin_user, organization, owner)
        require_approval(approve_new_api_keys=True, approve_new_m2m_apps=True, approve_scope_increases=True)
        credential_request_create(
            credential=wider,
            requester=member,
            request_type="scope_increase",
            requested_scopes=["orders:read", "billing:read"],
            justification="x",
        )
        call_command("send_credential_notices")
    answers = _links_answer(members_only=True)
    told = {_notice_of(subject) for subject, *_ in answers}
    assert {"Secret leaked", "Review overdue", "Review due", "Suspended", "Owner left"} <= told
    assert "Approval requested" in told
    assert all(status == 200 for *_, status in answers), answers


def test_decision_links_resolve_for_the_requester(
    kit, require_approval, owner, member, member_client, django_capture_on_commit_callbacks
):
    require_approval()
    for decide in (credential_request_approve, credential_request_deny):
        with django_capture_on_commit_callbacks(execute=True):
            member_client.post(kit.create_url, kit.create_form(owner=member, name=f"r-{decide.__name__}"))
        request = CredentialRequest.objects.order_by("-pk").first()
        with django_capture_on_commit_callbacks(execute=True):
            decide(request=request, actor=owner, comment="ok")
    answers = _links_answer()
    assert {"Request approved", "Request denied"} <= {_notice_of(subject) for subject, *_ in answers}
    assert all(status == 200 for *_, status in answers), answers


def test_federated_identities_get_the_scheduled_notices_with_links_that_resolve(
    organization, owner, admin_user, member, make_app, oidc_issuer, django_capture_on_commit_callbacks
):
    trust, _ = federated_identity_create(
        application=make_app(app_owner=member).application,
        actor=member,
        issuer=oidc_issuer.url,
        subject="repo:acme/a:ref:refs/heads/main",
    )
    federated_identity_create(
        application=make_app(app_owner=admin_user, name="admins").application,
        actor=admin_user,
        issuer=oidc_issuer.url,
        subject="repo:acme/b:ref:refs/heads/main",
    )
    FederatedIdentity.objects.filter(pk=trust.pk).update(review_due_at=timezone.now() + timedelta(days=3))
    _remove(admin_user, organization, owner)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices")
    assert any("Federated identity" in m.subject for m in mail.outbox), [m.subject for m in mail.outbox]
    answers = _links_answer()
    assert answers and all(status == 200 for *_, status in answers), answers
