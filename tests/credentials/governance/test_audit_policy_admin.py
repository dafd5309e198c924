"""One audit event with the actor per governance action; the policy page; the staff queues in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_request
from credentials.governance import approvals, edits, org_policy, ownership, reviews
from credentials.governance.models import CredentialRequest, CredentialStatus, RequestType, SuspensionReason
from portal.models import AuditEvent
from tests.factories import UserFactory
from tokens.clients.services import m2m_app_request
from tokens.models import ClientSecret

pytestmark = pytest.mark.django_db


class one_event:
    """Assert that the block writes exactly one audit event, with this action and actor."""

    def __init__(self, action, actor):
        self.action, self.actor = action, actor

    def __enter__(self):
        self.before = AuditEvent.objects.count()
        self.last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def __exit__(self, *exc):
        if exc[0]:
            return False
        new = list(AuditEvent.objects.filter(id__gt=self.last))
        assert [(e.action, e.actor) for e in new] == [(self.action, self.actor)]
        return False


def _request(kit, organization, requester, owner):
    if kit.key == "api_key":
        return api_key_request(
            organization=organization,
            name="req",
            owner=owner,
            scopes=["orders:read"],
            requester=requester,
            justification="because",
        )
    return m2m_app_request(
        organization=organization,
        name="req",
        owner=owner,
        scopes=["orders:read"],
        requester=requester,
        justification="because",
    )


def test_every_governance_action_writes_one_event_with_the_actor(
    kit, organization, owner, admin_user, member
):
    with one_event("credentials.policy.updated", owner):
        org_policy.policy_update(organization=organization, actor=owner, approve_scope_increases=True)
    with one_event("credentials.request.created", member):
        credential, request = _request(kit, organization, member, member)
    with one_event("credentials.request.approved", admin_user):
        approvals.credential_request_approve(request=request, actor=admin_user, comment="ok")
    with one_event(f"{kit.audit_prefix}.secret_issued", member):
        credential, _secret = approvals.credential_secret_issue(credential=credential, actor=member)
    with one_event("credentials.request.created", member):
        increase = approvals.credential_request_create(
            credential=credential,
            requester=member,
            request_type=RequestType.SCOPE_INCREASE,
            justification="more",
            requested_scopes=["orders:read", "orders:write"],
        )
    with one_event("credentials.request.denied", owner):
        approvals.credential_request_deny(request=increase, actor=owner)
    with one_event(f"{kit.audit_prefix}.recertified", member):
        reviews.credential_recertify(credential=credential, actor=member)
    with one_event(f"{kit.audit_prefix}.orphaned", owner):
        ownership.credentials_orphan(organization=organization, user=member, actor=owner)
    with one_event(f"{kit.audit_prefix}.owner_reassigned", admin_user):
        ownership.credential_reassign_owner(credential=credential, owner=admin_user, actor=admin_user)
    with one_event(f"{kit.audit_prefix}.suspended", owner):
        reviews.credential_suspend(credential=credential, actor=owner, reason=SuspensionReason.MANUAL)
    staff = UserFactory(email="staff@portal.test", is_staff=True)  # a manual suspension is staff's to lift
    with one_event(f"{kit.audit_prefix}.restored", staff):
        reviews.credential_restore(credential=credential, actor=staff, as_staff=True)
    with one_event(f"{kit.audit_prefix}.scopes_changed", owner):
        edits.credential_scopes_set(credential=credential, scopes=[], actor=owner)
    with one_event(f"{kit.audit_prefix}.revoked", owner):
        reviews.credential_revoke(credential=credential, actor=owner, reason="done")
    # A refused action writes nothing.
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError):
        reviews.credential_suspend(credential=credential, actor=owner, reason=SuspensionReason.MANUAL)
    assert AuditEvent.objects.count() == before


def test_approval_checks_happen_in_the_service(kit, organization, owner, member):
    credential, request = _request(kit, organization, member, member)
    with pytest.raises(ValidationError, match="own request"):
        approvals.credential_request_approve(request=request, actor=member)
    other_member = get_user_model().objects.create_user(email="x@acme.test")
    from tests.factories import MembershipFactory

    MembershipFactory(organization=organization, user=other_member)
    with pytest.raises(ValidationError, match="owners and admins"):
        approvals.credential_request_approve(request=request, actor=other_member)
    approvals.credential_request_approve(request=request, actor=owner)
    with pytest.raises(ValidationError, match="already approved"):
        approvals.credential_request_deny(request=request, actor=owner)
    with pytest.raises(ValidationError, match="owner"):
        approvals.credential_secret_issue(credential=credential, actor=owner)


def test_one_waiting_request_per_credential(kit, organization, owner, member):
    credential, _ = kit.create(owner=member)
    approvals.credential_request_create(
        credential=credential,
        requester=member,
        request_type=RequestType.SCOPE_INCREASE,
        justification="a",
        requested_scopes=["orders:read", "orders:write"],
    )
    with pytest.raises(ValidationError, match="already waiting"):
        approvals.credential_request_create(
            credential=credential,
            requester=member,
            request_type=RequestType.SCOPE_INCREASE,
            justification="b",
            requested_scopes=["orders:read", "billing:read"],
        )


def test_policy_page(owner_client, member_client, organization, owner):
    url = reverse("org-policy", kwargs={"org_slug": organization.slug})
    assert member_client.get(url).status_code == 403
    page = owner_client.get(url)
    assert page.status_code == 200 and "Approval required for new API keys" in page.content.decode()
    data = {
        "approve_new_api_keys": "on",
        "api_key_max_lifetime_days": "30",
        "client_secret_max_lifetime_days": "",
        "default_rotation_overlap_hours": "24",
        "api_key_review_interval_days": "60",
        "m2m_app_review_interval_days": "90",
        "orphan_grace_days": "7",
        "overdue_grace_days": "14",
        "leaked_credential_action": "revoke",
    }
    assert owner_client.post(url, data).status_code == 302
    policy = org_policy.policy_for(organization)
    assert (
        policy.approve_new_api_keys
        and policy.api_key_max_lifetime_days == 30
        and policy.orphan_grace_days == 7
    )
    event = AuditEvent.objects.get(action="credentials.policy.updated")
    assert event.actor == owner and event.extra["orphan_grace_days"] == {"from": 14, "to": 7}
    bad = owner_client.post(url, {**data, "orphan_grace_days": "-1"})
    assert bad.status_code == 400 and "field-error" in bad.content.decode()


def test_maximum_lifetimes(organization, owner, scopes):
    org_policy.policy_update(
        organization=organization,
        actor=owner,
        api_key_max_lifetime_days=30,
        client_secret_max_lifetime_days=10,
    )
    key, _ = api_key_create(organization=organization, name="k", owner=owner, scopes=[], actor=owner)
    assert timedelta(days=29) < key.expires_at - timezone.now() <= timedelta(days=30)
    with pytest.raises(ValidationError):
        api_key_create(
            organization=organization,
            name="k2",
            owner=owner,
            scopes=[],
            actor=owner,
            expires_at=timezone.now() + timedelta(days=60),
        )
    from tokens.clients.services import m2m_app_create

    app, _ = m2m_app_create(organization=organization, name="a", owner=owner, actor=owner)
    secret = ClientSecret.objects.get(application=app)
    assert timedelta(days=9) < secret.expires_at - timezone.now() <= timedelta(days=10)
    assert org_policy.policy_for(organization).review_interval("api_key") == timedelta(days=90)


def _changelist(kit):
    return reverse(
        "admin:credentials_apikey_changelist"
        if kit.key == "api_key"
        else "admin:tokens_m2mapplication_changelist"
    )


def test_admin_queues_and_bulk_actions(kit, staff_client, organization, owner, member, admin_user):
    orphan, _ = kit.create(owner=member, name="orphaned one")
    overdue, _ = kit.create(owner=owner, name="overdue one")
    kit.model.objects.filter(pk=overdue.pk).update(review_due_at=timezone.now() - timedelta(days=3))
    ownership.credentials_orphan(organization=organization, user=member, actor=owner)
    changelist = _changelist(kit)
    orphaned_page = staff_client.get(changelist + "?queue=orphaned").content.decode()
    assert "orphaned one" in orphaned_page and "overdue one" not in orphaned_page
    overdue_page = staff_client.get(changelist + "?queue=overdue").content.decode()
    assert "overdue one" in overdue_page and "orphaned one" not in overdue_page

    staff_client.post(changelist, {"action": "suspend_selected", "_selected_action": [overdue.pk]})
    assert kit.reload(overdue).status == CredentialStatus.SUSPENDED
    assert AuditEvent.objects.get(action=f"{kit.audit_prefix}.suspended").actor == staff_client.staff
    staff_client.post(changelist, {"action": "restore_selected", "_selected_action": [overdue.pk]})
    assert kit.reload(overdue).status == CredentialStatus.ACTIVE

    staff_client.post(
        changelist,
        {"action": "reassign_owner", "_selected_action": [orphan.pk], "apply": "1", "owner": admin_user.pk},
    )
    orphan = kit.reload(orphan)
    assert orphan.owner == admin_user and orphan.orphaned_at is None
    assert AuditEvent.objects.get(action=f"{kit.audit_prefix}.owner_reassigned").actor == staff_client.staff


def test_admin_deny_action(kit, staff_client, organization, member):
    _credential, request = _request(kit, organization, member, member)
    staff_client.post(
        reverse("admin:credentials_credentialrequest_changelist"),
        {"action": "deny_selected", "_selected_action": [request.pk], "apply": "1"},
    )
    request.refresh_from_db()
    assert request.state == "denied" and request.decided_by == staff_client.staff
    assert staff_client.get(reverse("admin:credentials_organizationpolicy_changelist")).status_code == 200


def test_org_home_counts_waiting_requests(kit, owner_client, member, organization):
    _request(kit, organization, member, member)
    page = owner_client.get(reverse("org-home", kwargs={"org_slug": organization.slug})).content.decode()
    assert "1 request waiting for approval" in page


def test_issued_secret_is_stored_only_as_a_digest(kit, organization, owner, member):
    credential, request = _request(kit, organization, member, member)
    approvals.credential_request_approve(request=request, actor=owner)
    _credential, secret = approvals.credential_secret_issue(credential=credential, actor=member)
    dump = " ".join(str(v) for row in ApiKey.objects.values() for v in row.values())
    dump += " ".join(str(v) for row in ClientSecret.objects.values() for v in row.values())
    dump += " ".join(str(e.extra) for e in AuditEvent.objects.all())
    dump += " ".join(str(r.__dict__) for r in CredentialRequest.objects.all())
    assert secret not in dump


def test_default_overlap_is_preselected_when_rotating(kit, owner, owner_client, organization):
    org_policy.policy_update(organization=organization, actor=owner, default_rotation_overlap_hours=72)
    credential, _ = kit.create(owner=owner)
    url = kit.url(credential, "rotate") if kit.key == "api_key" else kit.url(credential)
    page = owner_client.get(url).content.decode()
    # The same control for both kinds (issue 17, item 5): a list of overlaps, the policy's preselected.
    assert '<option value="72" selected>' in page


def test_only_owner_or_admin_asks_for_more_scopes(kit, organization, owner, member):
    credential, _ = kit.create(owner=owner)
    with pytest.raises(ValidationError, match="owner or an organisation admin"):
        approvals.credential_request_create(
            credential=credential,
            requester=member,
            request_type=RequestType.SCOPE_INCREASE,
            justification="x",
            requested_scopes=["orders:read", "orders:write"],
        )
