"""Organisation owners and admins restore an `orphaned` or `review_overdue` suspension from the
credential's page (docs/governance.md, Reviews); a `manual` or `leaked` one is staff's to lift."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from credentials.governance.models import CredentialStatus, SuspensionReason
from credentials.governance.reviews import credential_restore, credential_suspend
from portal.models import AuditEvent
from tests.factories import UserFactory
from tokens.federation.services import federated_identity_create

pytestmark = pytest.mark.django_db

ORGANIZATION_REASONS = [SuspensionReason.ORPHANED, SuspensionReason.REVIEW_OVERDUE]
STAFF_REASONS = [SuspensionReason.MANUAL, SuspensionReason.LEAKED]


def _restore_forms(html: str) -> list[str]:
    forms = re.findall(r"<form\b.*?</form>", html, flags=re.S)
    return [f for f in forms if re.search(r">\s*Restore\s*<", f)]


def _suspended(kit, *, owner, reason):
    """Return a credential of `owner` suspended for `reason` (with its mark, as the sweep leaves it)."""
    credential, secret = kit.create(owner=owner)
    long_ago = timezone.now() - timedelta(days=60)
    if reason == SuspensionReason.ORPHANED:
        kit.model.objects.filter(pk=credential.pk).update(orphaned_at=long_ago)
    elif reason == SuspensionReason.REVIEW_OVERDUE:
        kit.model.objects.filter(pk=credential.pk).update(review_due_at=long_ago)
    credential_suspend(credential=kit.reload(credential), actor=None, reason=reason)
    return kit.reload(credential), secret


def _flashes(client, response) -> str:
    """Return the flash messages a POST left, as the credential's page (its redirect) shows them."""
    assert response.status_code == 302, response.status_code
    page = client.get(response["Location"])
    return " ".join(str(m) for m in page.context["messages"])


def _restored_events(kit) -> int:
    return AuditEvent.objects.filter(action=f"{kit.audit_prefix}.restored").count()


@pytest.mark.parametrize("reason", ORGANIZATION_REASONS)
@pytest.mark.parametrize(("who", "session"), [("owner", "owner_client"), ("admin_user", "admin_client_org")])
def test_an_org_manager_restores_an_orphaned_or_overdue_suspension_from_its_page(
    kit, request, member, client, reason, who, session
):
    manager = request.getfixturevalue(session)
    credential, secret = _suspended(kit, owner=member, reason=reason)
    assert kit.scopes_in_use(client, credential, secret) is None

    page = manager.get(kit.url(credential)).content.decode()
    (form,) = _restore_forms(page)
    assert f'action="{kit.url(credential, "restore")}"' in form

    shown = _flashes(manager, manager.post(kit.url(credential, "restore")))
    assert "was restored: its suspension is lifted." in shown
    restored = kit.reload(credential)
    assert restored.status == CredentialStatus.ACTIVE and restored.suspension_reason == ""
    assert kit.scopes_in_use(client, restored, secret) == ["orders:read"]
    # The mark stays, its grace anew: the next policy run does not suspend it again at once.
    assert (restored.orphaned_at if reason == SuspensionReason.ORPHANED else restored.review_due_at) > (
        timezone.now() - timedelta(minutes=1)
    )
    event = AuditEvent.objects.get(action=f"{kit.audit_prefix}.restored")
    assert event.actor == request.getfixturevalue(who)
    assert event.extra == {"reason": reason}
    assert not _restore_forms(manager.get(kit.url(credential)).content.decode())


def test_a_double_submit_restores_once_and_says_why_the_second_did_nothing(kit, owner_client, member):
    credential, _ = _suspended(kit, owner=member, reason=SuspensionReason.ORPHANED)
    url = kit.url(credential, "restore")
    owner_client.post(url)
    shown = _flashes(owner_client, owner_client.post(url))
    assert "Only a suspended credential can be restored (this one is active)." in shown
    assert _restored_events(kit) == 1


@pytest.mark.parametrize("reason", STAFF_REASONS)
def test_a_manual_or_leaked_suspension_is_not_restorable_by_the_organisation(
    kit, owner, owner_client, member, client, reason
):
    credential, secret = _suspended(kit, owner=member, reason=reason)
    page = owner_client.get(kit.url(credential)).content.decode()
    assert not _restore_forms(page)
    if reason == SuspensionReason.MANUAL:
        assert "The portal's staff suspended it: only they can restore it." in page

    shown = _flashes(owner_client, owner_client.post(kit.url(credential, "restore")))
    assert "portal's staff" in shown, shown
    assert kit.reload(credential).status == CredentialStatus.SUSPENDED
    assert kit.scopes_in_use(client, credential, secret) is None
    assert _restored_events(kit) == 0
    with pytest.raises(ValidationError) as refused:
        credential_restore(credential=credential, actor=owner)
    assert refused.value.code == "staff_only"


@pytest.mark.parametrize("reason", [*ORGANIZATION_REASONS, *STAFF_REASONS])
@pytest.mark.parametrize("by", ["staff", "system"])
def test_staff_and_the_system_restore_every_reason(kit, member, reason, by):
    actor = UserFactory(email="staff@portal.test", is_staff=True) if by == "staff" else None
    credential, _ = _suspended(kit, owner=member, reason=reason)
    restored = credential_restore(credential=credential, actor=actor, as_staff=by == "staff")
    assert restored.status == CredentialStatus.ACTIVE
    assert AuditEvent.objects.get(action=f"{kit.audit_prefix}.restored").actor == actor


def test_a_plain_member_cannot_restore_even_their_own_credential(kit, member, member_client):
    credential, _ = _suspended(kit, owner=member, reason=SuspensionReason.REVIEW_OVERDUE)
    assert not _restore_forms(member_client.get(kit.url(credential)).content.decode())
    assert member_client.post(kit.url(credential, "restore")).status_code == 403
    assert kit.reload(credential).status == CredentialStatus.SUSPENDED
    with pytest.raises(ValidationError) as refused:
        credential_restore(credential=credential, actor=member)
    assert refused.value.code == "not_manager"
    assert _restored_events(kit) == 0


def test_restore_is_post_only_and_needs_a_recent_sign_in(kit, owner_client, member, settings):
    credential, _ = _suspended(kit, owner=member, reason=SuspensionReason.ORPHANED)
    url = kit.url(credential, "restore")
    assert owner_client.get(url).status_code == 405
    settings.PORTAL_STEP_UP_SECONDS = 0
    response = owner_client.post(url, HTTP_REFERER=kit.url(credential))
    assert response.status_code == 302 and "reauthenticate" in response["Location"]
    assert kit.reload(credential).status == CredentialStatus.SUSPENDED


def test_an_active_credential_shows_no_restore(kit, owner_client, member):
    credential, _ = kit.create(owner=member)
    assert not _restore_forms(owner_client.get(kit.url(credential)).content.decode())


def test_a_federated_identity_is_restored_the_same_way(organization, owner, owner_client, member, scopes):
    from tests.factories import make_m2m_app

    application, _ = make_m2m_app(organization, member)
    identity, *_ = federated_identity_create(
        application=application,
        actor=member,
        issuer="https://token.actions.githubusercontent.com",
        subject="repo:acme/api:ref:refs/heads/main",
        preset="github_actions",
    )
    credential_suspend(credential=identity, actor=None, reason=SuspensionReason.REVIEW_OVERDUE)
    kwargs = {"org_slug": organization.slug, "identity_id": identity.pk}
    page = owner_client.get(reverse("org-federated-detail", kwargs=kwargs)).content.decode()
    assert _restore_forms(page)
    owner_client.post(reverse("org-federated-restore", kwargs=kwargs))
    identity.refresh_from_db()
    assert identity.status == CredentialStatus.ACTIVE


@pytest.mark.parametrize(
    ("reason", "says", "never"),
    [
        (SuspensionReason.MANUAL, "The portal's staff suspended it: only they can restore", "Restore button"),
        (SuspensionReason.ORPHANED, "the Restore button on its page", "portal's staff"),
        (SuspensionReason.REVIEW_OVERDUE, "the Restore button on its page", "portal's staff"),
        (SuspensionReason.LEAKED, "ask the portal's staff to restore it", "Restore button"),
    ],
)
def test_the_suspended_notice_says_who_can_restore_it(
    kit, member, settings, django_capture_on_commit_callbacks, reason, says, never
):
    settings.PORTAL_BASE_URL = "https://portal.example"
    _suspended(kit, owner=member, reason=reason)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_credential_notices", "--no-suspend")
    (email,) = {m.body for m in mail.outbox if "Suspended" in m.subject}
    assert says in email, email
    assert never not in email, email
    assert "An organisation admin can restore it from its page" not in email
