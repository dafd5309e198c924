"""Accounts in the admin are switched off, never deleted (memberships, credentials, last owners),
and switching one off signs it out; the MFA requirement's REST refusal; second factors stay read-only."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent, Membership, MfaRequirement, Role, User
from tests.factories import UserFactory, enrol_totp, make_api_key
from tests.portal.test_account_security import make_stale, password_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    user = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(user)
    return user


def _staff_client(staff, *, stale=False) -> Client:
    client = Client()
    client.force_login(staff)
    if stale:
        make_stale(client)
    return client


def _delete(client, user):
    url = reverse("admin:portal_user_delete", args=[user.pk])
    return client.post(url, {"post": "yes"}, HTTP_REFERER=url)


def test_deleting_an_account_leaves_no_unowned_key_outside_the_orphan_queue(
    staff, organization, owner, member, scopes
):
    key, _plain = make_api_key(organization, member, scopes=["orders:read"])
    response = _delete(_staff_client(staff), member)
    assert response.status_code in (200, 302, 403)
    key.refresh_from_db()
    # Either the deletion is refused (like an M2M application's owner, on_delete=PROTECT), or the
    # key is orphaned like on any other departure, so governance's orphan queue and grace see it.
    assert key.owner_id is not None or key.orphaned_at is not None


def test_deleting_an_account_writes_an_audit_row_for_each_membership_it_ends(
    staff, organization, owner, member
):
    response = _delete(_staff_client(staff), member)
    assert response.status_code in (200, 302, 403)
    still_member = Membership.objects.filter(user_id=member.pk).exists()
    audited = AuditEvent.objects.filter(
        organization=organization, target_label__icontains=member.email
    ).exists()
    assert still_member or audited


def test_deleting_the_last_owner_does_not_leave_an_organisation_without_owner(
    staff, organization, owner, member
):
    response = _delete(_staff_client(staff), owner)
    assert response.status_code in (200, 302, 403)
    assert Membership.objects.filter(organization=organization, role=Role.OWNER).exists()


def test_an_account_is_never_deleted_in_the_admin_only_switched_off(staff, organization, owner, member):
    for stale in (True, False):
        response = _delete(_staff_client(staff, stale=stale), member)
        assert response.status_code == 403 and User.objects.filter(pk=member.pk).exists()


def test_a_deleted_owners_key_loses_its_portal_scopes_at_once(
    redis_cache, staff, organization, owner, member, scopes
):
    _key, plain = make_api_key(organization, member, scopes=["api_keys:manage", "orders:read"])
    machine = Client()
    before = machine.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert before.status_code == 200 and "api_keys:manage" in before.json()["scopes"]
    _delete(_staff_client(staff), member)
    if User.objects.filter(pk=member.pk).exists():
        return  # deleting an owner of credentials is refused: nothing to check
    after = machine.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {plain}")
    # Like a removal (docs/security.md): the owner is gone, so the key lends no portal role.
    assert after.status_code == 200
    assert "api_keys:manage" not in after.json()["scopes"]
    assert after.json()["owner"] != member.email


def _user_form(user, **changes) -> dict:
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        **changes,
    }
    return {k: v for k, v in data.items() if v is not None}


def test_deactivating_an_account_ends_its_sessions(staff, organization, member):
    member_client = Client()
    password_step(member_client, member.email)
    assert member_client.get(reverse("org-home", kwargs={"org_slug": "acme"})).status_code == 200
    admin = _staff_client(staff)
    url = reverse("admin:portal_user_change", args=[member.pk])
    off = admin.post(url, _user_form(member))  # "is_active" unticked
    assert off.status_code == 302, off.content[:500]
    member.refresh_from_db()
    assert not member.is_active
    # Staff switch the account back on a little later (the investigation found nothing, say)…
    on = admin.post(url, _user_form(member, is_active="on"))
    assert on.status_code == 302
    # …the browser that was signed in when the account was switched off must not be signed in again
    # (OWASP ASVS 5.0 V7.4.2: terminate all active sessions when an account is disabled).
    again = member_client.get(reverse("org-home", kwargs={"org_slug": "acme"}))
    assert again.status_code == 302 and again["Location"].startswith(reverse("login"))


def test_the_mfa_requirement_refuses_rest_calls_with_a_machine_readable_code(organization, member_client):
    organization.mfa_required = MfaRequirement.EVERYONE
    organization.save()
    response = member_client.get("/api/v1/orgs/acme/api-keys/")
    assert response.status_code == 403
    body = response.json()
    # BRIEF, second round: "Every REST refusal carries a machine-readable `code` beside `detail`".
    assert "detail" in body and body.get("code")


def test_staff_removing_a_members_second_factor_in_the_admin_is_audited(staff, member):
    enrol_totp(member)
    totp = Authenticator.objects.get(user=member, type=Authenticator.Type.TOTP)
    url = reverse("admin:mfa_authenticator_delete", args=[totp.pk])
    response = _staff_client(staff).post(url, {"post": "yes"})
    assert response.status_code in (302, 403)
    if Authenticator.objects.filter(pk=totp.pk).exists():
        return  # the admin does not remove factors: fine
    # docs/account-security.md: `portal.account.mfa_removed` when a factor "was removed".
    assert AuditEvent.objects.filter(action="portal.account.mfa_removed", target_id=str(member.pk)).exists()


def test_staff_never_remove_a_second_factor_in_the_admin(staff, member):
    enrol_totp(member)
    totp = Authenticator.objects.get(user=member, type=Authenticator.Type.TOTP)
    url = reverse("admin:mfa_authenticator_delete", args=[totp.pk])
    for stale in (True, False):
        response = _staff_client(staff, stale=stale).post(url, {"post": "yes"}, HTTP_REFERER=url)
        assert response.status_code == 403 and Authenticator.objects.filter(pk=totp.pk).exists()
