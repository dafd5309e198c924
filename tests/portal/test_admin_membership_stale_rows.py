"""The organisation admin's member rows, saved after a role changed in the dashboard meanwhile.

What was wrong: the page posts every member row's role as it showed it, and the inline compared it
with the role stored *now*: an owner's demotion of an admin in the dashboard, made after staff opened
the page, was undone by staff renaming the organisation (the stale role looked like staff's change,
and the person was promoted again). Each saved row now carries the role it showed (`role_shown`): a
row staff left alone keeps the role stored now; a row staff changed or removed is refused with
"This member's role changed since you opened the page; reload it."

Also: an organisation added in the admin must start with an owner who can sign in, as
`organization_create` (dashboard, CLI) always gives it one; the check ran only once it existed.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import AuditEvent, Membership, Organization, Role
from portal.services.organizations import membership_change_role
from tests.factories import UserFactory
from tests.support.admin_forms import _add_inlines, organization_form

pytestmark = pytest.mark.django_db

STALE = "This member&#x27;s role changed since you opened the page; reload it."


@pytest.fixture
def opened(super_client, organization, owner, admin_user):
    """Staff open the organisation's page; then the owner demotes the admin in the dashboard."""
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, prefixes = organization_form(super_client.get(url), organization)
    membership = Membership.objects.get(organization=organization, user=admin_user)
    membership_change_role(membership=membership, role=Role.MEMBER, actor=owner)
    return url, data, prefixes[membership.pk], membership


def _staff_role_changes() -> int:
    return AuditEvent.objects.filter(action="portal.membership.role_changed", extra__via="admin").count()


def test_renaming_the_organisation_keeps_a_demotion_made_meanwhile(super_client, organization, opened):
    url, data, _prefix, membership = opened
    data["name"] = "Acme Incorporated"

    assert super_client.post(url, data).status_code == 302

    organization.refresh_from_db()
    assert organization.name == "Acme Incorporated"
    assert Membership.objects.get(pk=membership.pk).role == Role.MEMBER, "the admin was promoted again"
    assert _staff_role_changes() == 0


def test_changing_a_row_whose_role_changed_meanwhile_is_refused(super_client, organization, opened):
    url, data, prefix, membership = opened
    data[f"{prefix}-role"] = Role.OWNER  # staff promote the admin they saw
    data["name"] = "Acme Incorporated"

    response = super_client.post(url, data)

    assert response.status_code == 200
    assert STALE in response.content.decode()
    assert Membership.objects.get(pk=membership.pk).role == Role.MEMBER
    organization.refresh_from_db()
    assert organization.name == "Acme Inc"  # all or nothing
    assert _staff_role_changes() == 0
    # Reloaded, the page shows the role as it is, and staff's decision is applied.
    data, prefixes = organization_form(super_client.get(url), organization)
    data[f"{prefixes[membership.pk]}-role"] = Role.OWNER
    assert super_client.post(url, data).status_code == 302
    assert Membership.objects.get(pk=membership.pk).role == Role.OWNER


def test_removing_a_row_whose_role_changed_meanwhile_is_refused(super_client, opened):
    url, data, prefix, membership = opened
    data[f"{prefix}-DELETE"] = "on"

    response = super_client.post(url, data)

    assert response.status_code == 200
    assert STALE in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_a_row_posted_without_the_role_it_showed_may_not_change_it(super_client, organization, admin_user):
    """A page older than the field: its role is no change unless it is the one stored."""
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, prefixes = organization_form(super_client.get(url), organization)
    membership = Membership.objects.get(user=admin_user)
    del data[f"{prefixes[membership.pk]}-role_shown"]
    data[f"{prefixes[membership.pk]}-role"] = Role.OWNER

    response = super_client.post(url, data)

    assert response.status_code == 200 and STALE in response.content.decode()
    assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN


def test_the_role_shown_is_not_a_column_for_view_only_staff(staff_with, organization, owner):
    viewer = staff_with("portal.view_organization", "portal.view_membership")
    page = viewer.get(reverse("admin:portal_organization_change", args=[organization.pk]))
    assert page.status_code == 200
    assert "Role shown" not in page.content.decode()


# --- adding an organisation ----------------------------------------------------------------------


def _add_form(client, rows: list[tuple[object, str]]) -> dict:
    page = client.get(reverse("admin:portal_organization_add"))
    data = {"name": "Initech", "slug": "initech", "mfa_required": "none"}
    _add_inlines(page, data)
    prefix = page.context["inline_admin_formsets"][0].formset.prefix
    data[f"{prefix}-TOTAL_FORMS"] = str(len(rows))
    for i, (user, role) in enumerate(rows):
        data.update({f"{prefix}-{i}-user": user.pk, f"{prefix}-{i}-role": role})
    return data


@pytest.mark.parametrize("rows", ["none", "member", "switched-off owner"])
def test_an_organisation_cannot_be_added_without_an_owner_who_can_sign_in(super_client, member, rows):
    people = {
        "none": [],
        "member": [(member, Role.MEMBER)],
        "switched-off owner": [(UserFactory(email="gone@initech.test", is_active=False), Role.OWNER)],
    }[rows]

    response = super_client.post(reverse("admin:portal_organization_add"), _add_form(super_client, people))

    assert response.status_code == 200
    assert "Add at least one owner who can sign in" in response.content.decode()
    assert not Organization.objects.filter(slug="initech").exists()


def test_an_organisation_added_with_an_owner_is_created(super_client, member):
    response = super_client.post(
        reverse("admin:portal_organization_add"), _add_form(super_client, [(member, Role.OWNER)])
    )

    assert response.status_code == 302
    organization = Organization.objects.get(slug="initech")
    assert list(Membership.objects.filter(organization=organization).values_list("user", "role")) == [
        (member.pk, Role.OWNER)
    ]
