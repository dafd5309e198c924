"""An organisation's slug cannot change once it exists.

It is the `org_id` claim in every token the organisation's applications mint, and resource servers
pin it (docs/validating-tokens.md#pin-the-organisation). The admin used to let staff change it, and
the old slug was then free for a new organisation, whose tokens those services took for the old
one's. Now the change form shows the slug read-only; the name can still change.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import AuditEvent, Organization, Role
from tests.factories import MembershipFactory, UserFactory
from tests.support.admin_forms import _add_inlines, organization_form

pytestmark = pytest.mark.django_db


def test_a_posted_slug_is_ignored_on_change_and_the_old_slug_is_not_free_for_a_new_organisation(
    super_client, organization
):
    MembershipFactory(organization=organization, role=Role.OWNER, user=UserFactory(email="o@acme.test"))
    change = reverse("admin:portal_organization_change", args=[organization.pk])
    page = super_client.get(change)
    assert page.status_code == 200
    assert "slug" not in page.context["adminform"].form.fields
    assert "acme" in page.content.decode()  # shown, as text
    data, _prefixes = organization_form(page, organization)
    data.update(slug="acme-inc", name="Acme Rockets Inc")  # the customer rebrands
    assert super_client.post(change, data).status_code == 302
    organization.refresh_from_db()
    assert (organization.slug, organization.name) == ("acme", "Acme Rockets Inc")
    changed = AuditEvent.objects.get(organization=organization, action="portal.organization.changed")
    assert set(changed.extra) == {"name", "via"}

    add = reverse("admin:portal_organization_add")
    fresh = {"slug": "acme", "name": "Acme Rockets (a new customer)", "mfa_required": "none"}
    _add_inlines(super_client.get(add), fresh)
    response = super_client.post(add, fresh)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["slug"]
    assert list(Organization.objects.filter(slug="acme")) == [organization]


def test_the_add_form_still_takes_a_slug_suggested_from_the_name(super_client):
    add = reverse("admin:portal_organization_add")
    page = super_client.get(add)
    form = page.context["adminform"].form
    assert "slug" in form.fields
    assert "Permanent once saved" in str(form.fields["slug"].help_text)
    assert page.context["adminform"].prepopulated_fields  # filled in from the name as staff type it
    data = {"slug": "initech", "name": "Initech", "mfa_required": "none"}
    _add_inlines(page, data)
    # Its first owner (an organisation is never added without one).
    prefix = page.context["inline_admin_formsets"][0].formset.prefix
    first_owner = UserFactory(email="owner@initech.test")
    data.update(
        {f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-0-user": first_owner.pk, f"{prefix}-0-role": Role.OWNER}
    )
    assert super_client.post(add, data).status_code == 302
    assert Organization.objects.get(slug="initech").name == "Initech"
