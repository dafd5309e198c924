"""Two adds of one organisation slug at once in the admin (a double click on Save), on PostgreSQL.

Both forms passed the unique check before either committed; the second insert then failed on
`portal_organization_slug_key` and the admin answered 500. Now the second answers the add form
again with the slug's "already exists" error, and one organisation is created.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

import portal.admin as portal_admin
from portal.models import AuditEvent, Organization
from tests.factories import enrol_totp
from tests.support.admin_forms import _add_inlines
from tests.support.threads import pause_in, run_together


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_slug_added_twice_at_once_is_a_form_error_not_a_500(require_postgres, monkeypatch):
    staff = get_user_model().objects.create_superuser(email="staff@portal.test", password="x")
    enrol_totp(staff)
    url = reverse("admin:portal_organization_add")

    def client():
        c = Client(raise_request_exception=False)
        c.force_login(staff)
        return c

    first, second = client(), client()
    data = {"slug": "initech", "name": "Initech", "mfa_required": "none"}
    page = first.get(url)
    _add_inlines(page, data)
    # Its first owner (an organisation is never added without one).
    prefix = page.context["inline_admin_formsets"][0].formset.prefix
    first_owner = get_user_model().objects.create_user(email="owner@initech.test", password="x")
    data.update(
        {f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-0-user": first_owner.pk, f"{prefix}-0-role": "owner"}
    )
    # The first request has inserted its row (not yet committed) when it pauses in its audit write.
    holding = pause_in(monkeypatch, portal_admin, "audit_log", thread="first", seconds=1.5)

    def later():
        assert holding.wait(timeout=10)
        response = second.post(url, data)
        errors = response.context["adminform"].form.errors if response.status_code == 200 else None
        return response.status_code, errors

    results = run_together(("first", lambda: first.post(url, data).status_code), ("second", later))
    assert results["first"] == 302 and isinstance(results["second"], tuple), results
    status, errors = results["second"]
    assert status == 200, f"the second Save answered {status}, not the form's 'slug exists' error"
    assert "slug" in errors, errors
    assert Organization.objects.filter(slug="initech").count() == 1
    assert AuditEvent.objects.filter(action="portal.organization.created").count() == 1
