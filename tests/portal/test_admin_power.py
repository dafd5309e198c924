"""The admin's account and organisation forms change who holds power: a fresh sign-in first, and
an audit row for every such change (BRIEF.md, "The authority rule")."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent, Membership, MfaRequirement, Role
from portal.services import organizations as org_services
from tests.factories import MembershipFactory, UserFactory, enrol_totp
from tests.portal.test_account_security import make_stale
from tests.support.admin_forms import organization_form
from tests.support.threads import pause_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    user = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(user)  # staff use the admin only with a second factor
    return user


def _client(staff, *, stale: bool) -> Client:
    client = Client()
    client.force_login(staff)
    if stale:
        make_stale(client)
    return client


def _user_form(user, **changes) -> dict:
    return {
        "email": user.email,
        "full_name": user.full_name,
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        **changes,
    }


def _asked_to_step_up(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse("mfa_reauthenticate"))


def test_a_stale_session_changes_no_account(staff, member):
    password_hash = member.password
    client = _client(staff, stale=True)
    url = reverse("admin:portal_user_change", args=[member.pk])
    made_superuser = client.post(url, _user_form(member, is_staff="on", is_superuser="on"), HTTP_REFERER=url)
    new_address = client.post(url, _user_form(member, email="someone@evil.test"), HTTP_REFERER=url)
    password_url = reverse("admin:auth_user_password_change", args=[member.pk])
    password = client.post(password_url, {"password1": "N3w-pass-phrase!", "password2": "N3w-pass-phrase!"})
    assert all(_asked_to_step_up(r) for r in (made_superuser, new_address, password))
    member.refresh_from_db()
    assert (member.is_staff, member.is_superuser, member.email) == (False, False, "dev@acme.test")
    assert member.password == password_hash
    assert not AuditEvent.objects.filter(action__startswith="portal.user.").exists()


def test_staff_powers_and_a_new_address_are_audited(staff, member, organization, other_organization):
    Membership.objects.create(organization=other_organization, user=member, role=Role.ADMIN)
    client = _client(staff, stale=False)
    url = reverse("admin:portal_user_change", args=[member.pk])
    response = client.post(url, _user_form(member, email="dev.lead@acme.test", is_staff="on"))
    assert response.status_code == 302, response.content[:2000]
    powers = AuditEvent.objects.get(action="portal.user.staff_powers_changed")
    assert (powers.actor, powers.organization, powers.target_label) == (staff, None, "dev.lead@acme.test")
    assert powers.extra == {"fields": ["is_staff"], "is_staff": True, "is_superuser": False, "via": "admin"}
    moved = AuditEvent.objects.filter(action="portal.user.email_changed")
    assert sorted((e.organization.slug, e.extra["from"], e.extra["to"]) for e in moved) == [
        ("acme", "dev@acme.test", "dev.lead@acme.test"),
        ("globex", "dev@acme.test", "dev.lead@acme.test"),
    ]
    # An account of no organisation (staff) gets one event of no organisation.
    assert (
        client.post(
            reverse("admin:portal_user_change", args=[staff.pk]),
            _user_form(staff, email="ops@portal.test", is_staff="on", is_superuser="on"),
        ).status_code
        == 302
    )
    assert AuditEvent.objects.get(action="portal.user.email_changed", organization=None).extra == {
        "from": "staff@portal.test",
        "to": "ops@portal.test",
        "via": "admin",
    }
    # Saving again with nothing changed writes nothing.
    member.refresh_from_db()
    before = AuditEvent.objects.count()
    assert client.post(url, _user_form(member, is_staff="on")).status_code == 302
    assert AuditEvent.objects.count() == before


def _organization_form(client, organization, *, role: str, mfa_required: str) -> tuple[str, dict]:
    """The organisation's admin form with every member given `role` and the MFA requirement set."""
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, prefixes = organization_form(client.get(url), organization)
    data["mfa_required"] = mfa_required
    for prefix in prefixes.values():
        data[f"{prefix}-role"] = role
    return url, data


def test_roles_and_the_two_factor_requirement_need_a_fresh_sign_in(staff, organization, owner, member):
    organization.mfa_required = MfaRequirement.EVERYONE
    organization.save()
    stale = _client(staff, stale=True)
    url, data = _organization_form(stale, organization, role=Role.OWNER, mfa_required=MfaRequirement.NONE)
    assert _asked_to_step_up(stale.post(url, data, HTTP_REFERER=url))
    organization.refresh_from_db()
    assert Membership.objects.get(user=member, organization=organization).role == Role.MEMBER
    assert organization.mfa_required == MfaRequirement.EVERYONE

    fresh = _client(staff, stale=False)
    url, data = _organization_form(fresh, organization, role=Role.OWNER, mfa_required=MfaRequirement.NONE)
    assert fresh.post(url, data).status_code == 302
    assert Membership.objects.get(user=member, organization=organization).role == Role.OWNER
    assert AuditEvent.objects.filter(action="portal.membership.role_changed").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_admin_demotion_racing_a_dashboard_demotion_leaves_an_owner(
    require_postgres, monkeypatch, organization
):
    """The admin's "at least one owner" check reads the memberships after taking the owners' lock,
    so a demotion committed meanwhile in the dashboard is seen (PostgreSQL, real row locks)."""
    a = MembershipFactory(organization=organization, role=Role.OWNER)
    b = MembershipFactory(organization=organization, role=Role.OWNER)
    staff = get_user_model().objects.create_superuser(email="staff@portal.test", password="x")
    enrol_totp(staff)
    client = Client()
    client.force_login(staff)
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, prefixes = organization_form(client.get(url), organization)
    data[f"{prefixes[a.pk]}-role"] = Role.MEMBER  # staff demotes A; B stays owner in the form

    # B's demotion holds the owner rows locked, not yet committed, when it pauses.
    holding = pause_in(monkeypatch, org_services, "_check_manager_may_touch", thread="dashboard")
    results: dict[str, object] = {}

    def dashboard():
        try:
            org_services.membership_change_role(
                membership=Membership.objects.get(pk=b.pk), role=Role.MEMBER, actor=a.user
            )
            results["dashboard"] = "ok"
        except Exception as exc:  # noqa: BLE001
            results["dashboard"] = repr(exc)
        finally:
            connection.close()

    def admin():
        try:
            assert holding.wait(timeout=10)
            results["admin"] = client.post(url, data).status_code
        except Exception as exc:  # noqa: BLE001
            results["admin"] = repr(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=dashboard, name="dashboard"),
        threading.Thread(target=admin, name="admin"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results["dashboard"] == "ok" and results["admin"] in (200, 302), results
    owners = Membership.objects.filter(organization=organization, role=Role.OWNER).count()
    assert owners >= 1, f"no owner left: {results}"


def test_the_two_factor_requirement_changed_in_the_admin_is_audited_from_and_to_as_in_the_dashboard(
    staff, organization, owner
):
    """Through organization_set_mfa_requirement: `portal.organization.mfa_requirement_changed`
    {from, to}, as the dashboard writes it; another field is audited with its old and new value."""
    organization.mfa_required = MfaRequirement.EVERYONE
    organization.save()
    client = _client(staff, stale=False)
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, _prefixes = organization_form(client.get(url), organization)
    data.update(mfa_required=MfaRequirement.NONE, name="Acme Corp")
    assert client.post(url, data).status_code == 302
    organization.refresh_from_db()
    assert (organization.mfa_required, organization.name) == (MfaRequirement.NONE, "Acme Corp")
    events = AuditEvent.objects.filter(organization=organization, action__startswith="portal.organization.")
    assert sorted((e.action, e.actor, e.extra) for e in events) == [
        (
            "portal.organization.changed",
            staff,
            {"name": {"from": "Acme Inc", "to": "Acme Corp"}, "via": "admin"},
        ),
        (
            "portal.organization.mfa_requirement_changed",
            staff,
            {"from": MfaRequirement.EVERYONE, "to": MfaRequirement.NONE},
        ),
    ]


# --- switching an account off: an organisation keeps an owner who can sign in ----------------------


def test_switching_off_an_organisations_only_owner_who_can_sign_in_is_refused(
    staff, organization, other_organization, owner, member
):
    """As the organisation admin and the services refuse (docs/governance.md); a switched-off
    co-owner counts for nothing. The error names each organisation."""
    MembershipFactory(organization=organization, role=Role.OWNER, user=UserFactory(is_active=False))
    Membership.objects.create(organization=other_organization, user=owner, role=Role.OWNER)
    client = _client(staff, stale=False)
    url = reverse("admin:portal_user_change", args=[owner.pk])
    response = client.post(url, {k: v for k, v in _user_form(owner).items() if k != "is_active"})
    assert response.status_code == 200  # the form again, with its error
    error = " ".join(response.context["adminform"].form.errors["is_active"])
    assert "Acme Inc, Globex Corp" in error and "promote another member to owner" in error
    owner.refresh_from_db()
    assert owner.is_active
    assert not AuditEvent.objects.filter(action="portal.user.deactivated").exists()


def test_an_owner_beside_another_owner_who_can_sign_in_is_switched_off(staff, organization, owner):
    MembershipFactory(organization=organization, role=Role.OWNER)
    client = _client(staff, stale=False)
    url = reverse("admin:portal_user_change", args=[owner.pk])
    response = client.post(url, {k: v for k, v in _user_form(owner).items() if k != "is_active"})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert not owner.is_active
    assert AuditEvent.objects.filter(action="portal.user.deactivated", organization=organization).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_switching_off_both_owners_at_once_leaves_one_who_can_sign_in(
    require_postgres, monkeypatch, organization
):
    """Each save takes the owners' lock before it reads who can sign in, and reads after it has the
    lock: the second sees the first's switch-off, committed while it waited (real row locks)."""
    a = MembershipFactory(organization=organization, role=Role.OWNER).user
    b = MembershipFactory(organization=organization, role=Role.OWNER).user
    staff = get_user_model().objects.create_superuser(email="staff@portal.test", password="x")
    enrol_totp(staff)
    # The first save holds the owners' lock, not yet committed, when it pauses.
    holding = pause_in(monkeypatch, org_services, "active_owners_left", thread="first")
    results: dict[str, object] = {}

    def switch_off(user, *, wait: bool):
        try:
            if wait:
                assert holding.wait(timeout=10)
            client = _client(staff, stale=False)
            url = reverse("admin:portal_user_change", args=[user.pk])
            form = {k: v for k, v in _user_form(user).items() if k != "is_active"}
            results[threading.current_thread().name] = client.post(url, form).status_code
        except Exception as exc:  # noqa: BLE001
            results[threading.current_thread().name] = repr(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=switch_off, args=(a,), kwargs={"wait": False}, name="first"),
        threading.Thread(target=switch_off, args=(b,), kwargs={"wait": True}, name="second"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == {"first": 302, "second": 200}, results
    active = Membership.objects.filter(organization=organization, role=Role.OWNER, user__is_active=True)
    assert list(active.values_list("user", flat=True)) == [b.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_owner_demoted_while_staff_switch_off_the_other_leaves_one_who_can_sign_in(
    require_postgres, monkeypatch, organization
):
    """The services read the owners again once they hold the owners' lock: a demotion that waited
    behind the admin's switch-off of the other owner sees that owner switched off, and is refused.
    (Its locking statement read the accounts as they stood before the wait.)"""
    a = MembershipFactory(organization=organization, role=Role.OWNER)
    b = MembershipFactory(organization=organization, role=Role.OWNER)
    staff = get_user_model().objects.create_superuser(email="staff@portal.test", password="x")
    enrol_totp(staff)
    # The admin's save holds the owners' lock, not yet committed, when it pauses.
    holding = pause_in(monkeypatch, org_services, "active_owners_left", thread="admin")
    results: dict[str, object] = {}

    def switch_off_a():
        try:
            url = reverse("admin:portal_user_change", args=[a.user.pk])
            form = {k: v for k, v in _user_form(a.user).items() if k != "is_active"}
            results["admin"] = _client(staff, stale=False).post(url, form).status_code
        finally:
            connection.close()

    def demote_b():
        try:
            assert holding.wait(timeout=10)
            org_services.membership_change_role(membership=b, role=Role.MEMBER, actor=b.user)
            results["service"] = "demoted"
        except Exception as exc:  # noqa: BLE001
            results["service"] = getattr(exc, "code", repr(exc))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=switch_off_a, name="admin"),
        threading.Thread(target=demote_b, name="service"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    active = Membership.objects.filter(organization=organization, role=Role.OWNER, user__is_active=True)
    assert results["admin"] == 302 and results["service"] != "demoted", results
    assert list(active.values_list("pk", flat=True)) == [b.pk]
