"""The organisation admin's member rows keep the services' rules: a demoted inviter's invitations beyond
the new role are revoked, at least one owner who can sign in remains, an unchanged save audits
nothing, and the page costs as many queries for a large organisation as for a small one."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import AuditEvent, Membership, Role
from portal.services.organizations import invitation_create
from tests.factories import MembershipFactory, UserFactory
from tests.support.admin_forms import organization_form

pytestmark = pytest.mark.django_db


def _last_event_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _actions_since(last_id: int) -> list[str]:
    return list(AuditEvent.objects.filter(id__gt=last_id).order_by("id").values_list("action", flat=True))


def test_demoting_an_admin_revokes_their_invitations_beyond_the_new_role(
    super_client, organization, owner, admin_user
):
    """As membership_change_role (docs/security.md): reason inviter_lost_role, audited."""
    invitation, _token = invitation_create(
        organization=organization, email="new@acme.test", role=Role.ADMIN, actor=admin_user
    )
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, prefixes = organization_form(super_client.get(url), organization)
    data[f"{prefixes[Membership.objects.get(user=admin_user).pk]}-role"] = Role.MEMBER
    before = _last_event_id()
    assert super_client.post(url, data).status_code == 302
    assert Membership.objects.get(user=admin_user).role == Role.MEMBER
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None, "the demoted admin's admin invitation is still open"
    assert _actions_since(before) == ["portal.membership.role_changed", "portal.invitation.revoked"]


def test_the_last_owner_who_can_sign_in_is_not_demoted(super_client, organization, owner):
    """A switched-off owner counts for nothing, as in the services (active_owners_left)."""
    switched_off = UserFactory(email="gone@acme.test", is_active=False)
    MembershipFactory(organization=organization, user=switched_off, role=Role.OWNER)
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, prefixes = organization_form(super_client.get(url), organization)
    data[f"{prefixes[Membership.objects.get(user=owner).pk]}-role"] = Role.MEMBER
    response = super_client.post(url, data)
    assert response.status_code == 200  # the form again, with its error
    assert "at least one owner who can sign in" in response.content.decode()
    assert Membership.objects.get(user=owner).role == Role.OWNER


def test_saving_an_organisation_unchanged_writes_no_audit_event(super_client, organization, owner):
    """Like the user admin: nothing changed, nothing audited."""
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, _prefixes = organization_form(super_client.get(url), organization)
    before = _last_event_id()
    assert super_client.post(url, data).status_code == 302
    assert _actions_since(before) == []


def test_a_role_change_alone_audits_the_membership_and_not_the_organisation(
    super_client, organization, owner, member
):
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, prefixes = organization_form(super_client.get(url), organization)
    data[f"{prefixes[Membership.objects.get(user=member).pk]}-role"] = Role.ADMIN
    before = _last_event_id()
    assert super_client.post(url, data).status_code == 302
    assert _actions_since(before) == ["portal.membership.role_changed"]


def test_the_organisation_page_runs_as_many_queries_for_forty_members_as_for_one(
    super_client, organization, owner, django_assert_max_num_queries
):
    """Each saved row's person comes with the row (shown as text: it cannot change, see the swap
    test in test_admin_no_back_doors.py), not from an autocomplete query per row; a new row keeps
    the autocomplete."""
    for i in range(40):
        MembershipFactory(organization=organization, user=UserFactory(email=f"m{i}@acme.test"))
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    with django_assert_max_num_queries(10):  # 8 today, whatever the number of members
        response = super_client.get(url)
    page = response.content.decode()
    assert response.status_code == 200 and all(f"m{i}@acme.test" in page for i in range(40))
    formset = response.context["inline_admin_formsets"][0].formset
    assert "autocomplete" in formset.empty_form["user"].as_widget()
