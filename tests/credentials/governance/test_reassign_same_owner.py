"""Giving a credential the owner it already has changes nothing and records nothing (as a REST PATCH
naming the current owner): a resent "Give to another member" form, or two sendings at once, leave
one owner change in the audit log, not a second one "from X to X". An orphaned credential taken
back by its former owner, a member again, is the exception: its orphan mark is cleared."""

from __future__ import annotations

import pytest

from credentials.governance import ownership
from portal.models import AuditEvent, Membership, Role
from portal.services import organizations as org_services
from tests.tokens.clients.test_double_submit import _at_once


def _owner_changes(kit) -> list[tuple[str, str]]:
    events = AuditEvent.objects.filter(action=f"{kit.audit_prefix}.owner_reassigned").order_by("pk")
    return [(e.extra["from"], e.extra["to"]) for e in events]


@pytest.mark.django_db
def test_the_reassign_form_sent_again_records_one_owner_change(kit, owner, member, owner_client):
    credential, _secret = kit.create(owner=owner)
    url = kit.url(credential, "reassign")
    first = owner_client.post(url, {"owner-owner": member.pk})
    again = owner_client.post(url, {"owner-owner": member.pk}, follow=True)
    assert first.status_code == 302 and again.status_code == 200
    assert f"is now owned by {member.email}" in again.content.decode()
    assert kit.reload(credential).owner == member
    assert _owner_changes(kit) == [(owner.email, member.email)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_reassign_form_sent_twice_at_once_records_one_owner_change(
    require_postgres, kit, owner, member, owner_client
):
    credential, _secret = kit.create(owner=owner)
    statuses = _at_once(owner_client, kit.url(credential, "reassign"), {"owner-owner": member.pk})
    assert statuses == [302, 302], statuses
    assert kit.reload(credential).owner == member
    assert _owner_changes(kit) == [(owner.email, member.email)]


@pytest.mark.django_db
def test_an_orphaned_credential_given_back_to_its_former_owner_is_no_longer_orphaned(
    kit, organization, owner, member
):
    credential, _secret = kit.create(owner=member)
    org_services.membership_remove(
        membership=Membership.objects.get(organization=organization, user=member), actor=owner
    )
    assert kit.reload(credential).orphaned_at is not None
    Membership.objects.create(organization=organization, user=member, role=Role.MEMBER)  # rejoined

    ownership.credential_reassign_owner(credential=kit.reload(credential), owner=member, actor=owner)

    assert kit.reload(credential).orphaned_at is None
    event = AuditEvent.objects.get(action=f"{kit.audit_prefix}.owner_reassigned")
    assert (event.extra["from"], event.extra["to"], event.extra["orphan_cleared"]) == (
        member.email,
        member.email,
        True,
    )


@pytest.mark.django_db
def test_a_rest_patch_naming_an_orphaned_credentials_former_owner_takes_it_back(
    kit, organization, owner, member, owner_client
):
    # As the dashboard's reassign form and the admin: the orphan mark goes, one owner change is recorded.
    credential, _secret = kit.create(owner=member)
    org_services.membership_remove(
        membership=Membership.objects.get(organization=organization, user=member), actor=owner
    )
    Membership.objects.create(organization=organization, user=member, role=Role.MEMBER)  # rejoined
    kind_path = "api-keys" if kit.key == "api_key" else "m2m-apps"
    ident = credential.key_id if kit.key == "api_key" else credential.pk
    url = f"/api/v1/orgs/{organization.slug}/{kind_path}/{ident}/"

    response = owner_client.patch(url, {"owner": member.email}, content_type="application/json")

    assert response.status_code == 200, response.content
    assert kit.reload(credential).orphaned_at is None
    events = AuditEvent.objects.filter(action__startswith=kit.audit_prefix)
    assert events.filter(extra__orphan_cleared=True).count() == 1
    recorded = events.count()
    again = owner_client.patch(url, {"owner": member.email}, content_type="application/json")
    assert again.status_code == 200 and events.count() == recorded  # nothing left to take back
