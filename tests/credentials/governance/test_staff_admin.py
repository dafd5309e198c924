"""Staff admin for daily use (issue 17, item 8): unused DOT tables hidden, queue counts, owner
choices for an orphaned credential, readable scopes, bulk decisions confirmed with a comment."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, IDToken, RefreshToken

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_request
from credentials.governance import ownership
from credentials.governance.models import CredentialRequest, RequestState
from portal.models import AuditEvent
from tests.credentials.governance.test_audit_policy_admin import _changelist
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_oauth_tables_the_portal_never_writes_are_not_in_the_admin(staff_client):
    for model in (AccessToken, Grant, IDToken, RefreshToken):
        assert not admin.site.is_registered(model), model
    index = staff_client.get(reverse("admin:index")).content.decode()
    for name in ("Grants", "Id tokens", "Refresh tokens", "Access tokens"):
        assert f">{name}<" not in index, name
    assert ">M2M applications<" in index or "M2m applications" in index or "m2mapplication" in index


def test_each_queue_shows_how_many_wait_in_it(kit, staff_client, organization, owner, member):
    kit.create(owner=member, name="orphaned one")
    overdue, _ = kit.create(owner=owner, name="overdue one")
    kit.model.objects.filter(pk=overdue.pk).update(review_due_at=timezone.now() - timedelta(days=3))
    ownership.credentials_orphan(organization=organization, user=member, actor=owner)
    page = staff_client.get(_changelist(kit)).content.decode()
    assert "Orphaned (owner left) (1)" in page
    assert "Review overdue (1)" in page
    assert "Suspended (0)" in page


def test_an_orphaned_credentials_owner_is_chosen_among_the_organisations_members(
    kit,
    staff_client,
    organization,
    other_organization,
    owner,
    member,
    admin_user,
):
    from tests.factories import MembershipFactory, UserFactory

    stranger = UserFactory(email="stranger@globex.test")
    MembershipFactory(organization=other_organization, user=stranger)
    orphan, _ = kit.create(owner=member, name="orphaned one")
    ownership.credentials_orphan(organization=organization, user=member, actor=owner)
    name = "credentials_apikey" if kit.key == "api_key" else "tokens_m2mapplication"
    page = staff_client.get(reverse(f"admin:{name}_change", args=[orphan.pk])).content.decode()
    select = re.search(r'<select name="owner"[^>]*>(.*?)</select>', page, re.S)
    assert select, "the owner is a plain list of members, not an empty search box"
    options = select.group(1)
    assert owner.email in options and admin_user.email in options
    assert stranger.email not in options
    assert f"{member.email} left {organization.name}" in page


def test_a_former_owners_address_is_text_in_the_admin(staff_client, organization, owner, scopes):
    """A quoted local part may hold markup ("<meta …>"@evil.example is a valid address): the admin
    prints help text as HTML, so the former owner's address is escaped there."""
    hostile = "\"<meta/http-equiv='refresh'/content='0;url=//evil.example/'>\"@evil.example"
    leaver = UserFactory(email=hostile)
    MembershipFactory(organization=organization, user=leaver)
    key, _secret = api_key_create(organization=organization, name="job", owner=leaver, scopes=[], actor=owner)
    ownership.credentials_orphan(organization=organization, user=leaver, actor=owner)
    page = staff_client.get(reverse("admin:credentials_apikey_change", args=[key.pk])).content.decode()
    assert f"left {organization.name}" in page
    assert "<meta/http-equiv" not in page and "&lt;meta/http-equiv" in page


def test_an_api_keys_scopes_are_shown_by_name_not_as_json(staff_client, organization, owner, scopes):
    key, _ = api_key_create(
        organization=organization, name="job", owner=owner, scopes=["orders:read"], actor=owner
    )
    page = staff_client.get(reverse("admin:credentials_apikey_change", args=[key.pk])).content.decode()
    assert "<code>orders:read</code>" in page
    assert "[&quot;orders:read&quot;]" not in page and '["orders:read"]' not in page


def test_approve_selected_asks_first_then_records_the_comment(
    staff_client, organization, owner, member, scopes
):
    _key, request = api_key_request(
        organization=organization,
        name="nightly export",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="because",
    )
    changelist = reverse("admin:credentials_credentialrequest_changelist")
    selection = {"action": "approve_selected", "_selected_action": [request.pk]}
    confirm = staff_client.post(changelist, selection)
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Approve 1 request(s)?" in page and "nightly export" in page and 'name="comment"' in page
    request.refresh_from_db()
    assert request.state == RequestState.PENDING  # nothing decided yet

    staff_client.post(changelist, {**selection, "apply": "1", "comment": "Checked with the team lead."})
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED and request.comment == "Checked with the team lead."
    assert AuditEvent.objects.filter(action="credentials.request.approved").count() == 1
    assert ApiKey.objects.count() == 1
    assert CredentialRequest.objects.filter(state=RequestState.PENDING).count() == 0
