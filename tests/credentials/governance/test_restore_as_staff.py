"""Staff lift a `manual` or `leaked` suspension in the admin only (`credential_restore(as_staff=True)`).

What was wrong: `credential_restore` took any `is_staff` account for staff. The admin's *restore*
action needs the model's change permission, but the dashboard's Restore reached the service for any
organisation admin, so a view-only support account that was also an admin of an organisation
re-activated a key whose secret is public. Now being staff counts only where the admin's
permission-gated action says so; in the dashboard such an account is the organisation admin it is.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from credentials.governance.models import CredentialStatus, SuspensionReason
from credentials.governance.reviews import credential_restore, credential_suspend
from portal.models import AuditEvent, Role
from tests.factories import MembershipFactory, UserFactory, enrol_totp

pytestmark = pytest.mark.django_db

STAFF_REASONS = [SuspensionReason.MANUAL, SuspensionReason.LEAKED]


@pytest.fixture
def support(organization, settings):
    """A staff account without any admin permission (view-only support) that is an admin of Acme."""
    settings.PORTAL_STEP_UP_SECONDS = 3600
    user = UserFactory(email="support@portal.test", is_staff=True)
    enrol_totp(user)
    MembershipFactory(organization=organization, user=user, role=Role.ADMIN)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    client.user = user
    return client


def _suspended(kit, owner, reason):
    credential, secret = kit.create(owner=owner)
    credential_suspend(credential=credential, actor=None, reason=reason)
    return kit.reload(credential), secret


def _changelist(kit) -> str:
    name = "credentials_apikey" if kit.key == "api_key" else "tokens_m2mapplication"
    return reverse(f"admin:{name}_changelist")


@pytest.mark.parametrize("reason", STAFF_REASONS)
def test_a_staff_org_admin_cannot_restore_a_staff_only_suspension_from_the_dashboard(
    kit, owner, support, client, reason
):
    credential, secret = _suspended(kit, owner, reason)

    support.post(kit.url(credential, "restore"))

    assert kit.reload(credential).status == CredentialStatus.SUSPENDED, "staff restored it from the dashboard"
    assert kit.scopes_in_use(client, credential, secret) is None
    assert not AuditEvent.objects.filter(action=f"{kit.audit_prefix}.restored").exists()
    with pytest.raises(ValidationError) as refused:
        credential_restore(credential=credential, actor=support.user)
    assert refused.value.code == "staff_only"


def test_a_staff_org_admin_restores_an_orphan_suspension_from_the_dashboard_as_its_admin(
    kit, member, support
):
    credential, _ = kit.create(owner=member)
    kit.model.objects.filter(pk=credential.pk).update(orphaned_at="2000-01-01T00:00:00Z")
    credential_suspend(credential=kit.reload(credential), actor=None, reason=SuspensionReason.ORPHANED)

    support.post(kit.url(credential, "restore"))

    assert kit.reload(credential).status == CredentialStatus.ACTIVE


def test_a_staff_account_of_no_organisation_restores_nothing_outside_the_admin(kit, owner):
    credential, _ = _suspended(kit, owner, SuspensionReason.LEAKED)
    with pytest.raises(ValidationError) as refused:
        credential_restore(credential=credential, actor=UserFactory(email="ops@portal.test", is_staff=True))
    assert refused.value.code == "not_manager"


@pytest.mark.parametrize("reason", STAFF_REASONS)
def test_the_admins_restore_action_lifts_it_for_staff_who_may_change_the_model(
    kit, owner, staff_with, client, reason
):
    credential, secret = _suspended(kit, owner, reason)
    perm = "credentials.change_apikey" if kit.key == "api_key" else "tokens.change_m2mapplication"
    staff = staff_with(perm)

    staff.post(_changelist(kit), {"action": "restore_selected", "_selected_action": [credential.pk]})

    assert kit.reload(credential).status == CredentialStatus.ACTIVE
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]
    assert AuditEvent.objects.get(action=f"{kit.audit_prefix}.restored").actor == staff.user


def test_the_admins_restore_action_is_not_offered_to_view_only_staff(kit, owner, staff_with):
    credential, _ = _suspended(kit, owner, SuspensionReason.LEAKED)
    perm = "credentials.view_apikey" if kit.key == "api_key" else "tokens.view_m2mapplication"
    viewer = staff_with(perm)

    viewer.post(_changelist(kit), {"action": "restore_selected", "_selected_action": [credential.pk]})

    assert kit.reload(credential).status == CredentialStatus.SUSPENDED
