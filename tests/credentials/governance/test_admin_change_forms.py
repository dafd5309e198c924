"""Credential and policy change forms in the admin: a refusal is shown as one, and bad input is a form
error or "not found", never a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from credentials.governance import org_policy, ownership, reviews
from portal.models import Role
from tests.factories import MembershipFactory, ScopeFactory, UserFactory
from tests.support.admin_forms import change_form_data

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_a_refused_owner_change_is_neither_a_success_nor_in_the_history(
    kind, super_client, organization, owner, member, make_key, make_app
):
    """The services refuse after the form validated (save_model): the admin shows the refusal alone,
    not "… was changed successfully", and the object's history (LogEntry) records no change."""
    ScopeFactory(name="requests:decide")  # a manager-only scope: a member may not own it
    if kind == "api_key":
        credential, _ = make_key(scopes=["requests:decide"])
        url = reverse("admin:credentials_apikey_change", args=[credential.pk])
        data = {"owner": member.pk}
    else:
        credential = make_app(scopes=["requests:decide"]).application
        url = reverse("admin:tokens_m2mapplication_change", args=[credential.pk])
        data = {**change_form_data(super_client.get(url)), "owner": member.pk}
    response = super_client.post(url, data, follow=True)
    credential.refresh_from_db()
    assert credential.owner_id == owner.pk
    levels = [m.level_tag for m in response.context["messages"]]
    assert levels == ["error"], [str(m) for m in response.context["messages"]]
    assert not LogEntry.objects.filter(object_id=str(credential.pk)).exists()


def test_an_accepted_owner_change_is_reported_and_logged(super_client, organization, owner, member, make_key):
    key, _ = make_key(scopes=["orders:read"])
    url = reverse("admin:credentials_apikey_change", args=[key.pk])
    response = super_client.post(url, {"owner": member.pk}, follow=True)
    key.refresh_from_db()
    assert key.owner_id == member.pk
    assert [m.level_tag for m in response.context["messages"]] == ["success"]
    assert LogEntry.objects.filter(object_id=str(key.pk)).exists()


def test_deeply_nested_json_in_the_policy_is_a_form_error(super_client, organization):
    """Django's JSON form field catches only JSONDecodeError: "[[[[…" raised RecursionError, a 500."""
    url = reverse(
        "admin:credentials_organizationpolicy_change", args=[org_policy.policy_for(organization).pk]
    )
    data = change_form_data(super_client.get(url))
    super_client.raise_request_exception = False
    response = super_client.post(url, {**data, "max_rate_limit": "[" * 50_000 + "]" * 50_000})
    assert response.status_code == 200, response.status_code
    assert "nested too deeply" in response.content.decode()


@pytest.mark.parametrize("model", ["credentials/apikey", "tokens/m2mapplication", "tokens/federatedidentity"])
def test_a_non_ascii_digit_object_id_is_not_found(model, super_client):
    """str.isdigit() is true for "²", and filter(pk="²") a ValueError: such an id is "not found", as in
    Django's own get_object."""
    super_client.raise_request_exception = False
    response = super_client.post(f"/admin/{model}/%C2%B2/change/", {"owner": "1"})
    assert response.status_code == 302  # the admin's "doesn't exist" redirect to its index


def test_reassigning_an_orphaned_credential_to_a_switched_off_account_is_refused(
    super_client, organization, owner, member, make_key
):
    """A switched-off account lends its credentials no role and can neither sign in, review nor
    rotate: a credential is not given to it (check_owner_is_member), so an orphaned key stays
    orphaned and the orphan grace still suspends it."""
    switched_off = UserFactory(email="sleeper@acme.test")
    MembershipFactory(organization=organization, user=switched_off, role=Role.MEMBER)
    switched_off.is_active = False
    switched_off.save()
    key, _ = make_key(owner=member)
    ownership.credentials_orphan(organization=organization, user=member, actor=owner)
    super_client.post(
        reverse("admin:credentials_apikey_changelist"),
        {"action": "reassign_owner", "_selected_action": [key.pk], "apply": "1", "owner": switched_off.pk},
    )
    reviews.credential_policies_apply(now=timezone.now() + timedelta(days=30))  # past the 14-day grace
    key.refresh_from_db()
    assert key.owner_id != switched_off.pk and (key.orphaned_at is not None or key.status == "suspended"), (
        key.owner_id,
        key.orphaned_at,
        key.status,
    )
