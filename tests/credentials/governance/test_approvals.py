"""Request → approve → secret generated once; request → deny; scope increases; the four-eyes rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_request, api_key_rotate
from credentials.governance import ownership, reviews
from credentials.governance.approvals import (
    credential_request_approve,
    credential_request_create,
    credential_request_deny,
    credential_secret_issue,
)
from credentials.governance.edits import credential_scopes_set
from credentials.governance.models import CredentialRequest, CredentialStatus, RequestState, RequestType
from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent, Membership, Role
from portal.services.organizations import membership_remove
from tests.factories import MembershipFactory, UserFactory, enrol_totp, make_api_key, make_m2m_app

pytestmark = pytest.mark.django_db


def _members_export_request(organization, member):
    """The member asks for a key of their own, "export" reading orders; return (key, request)."""
    return api_key_request(
        organization=organization,
        name="export",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="nightly export",
    )


def _decide(client, organization, request_id, decision, comment=""):
    return client.post(
        reverse("org-request-decide", kwargs={"org_slug": organization.slug, "request_id": request_id}),
        {"decision": decision, "comment": comment},
    )


def _reveal_secret(kit, response) -> str:
    body = response.content.decode()
    import re

    pattern = r"ipk_live_[0-9A-Za-z]{50}" if kit.key == "api_key" else r"ips_[0-9A-Za-z]{32}"
    found = re.findall(pattern, body)
    assert found, body[:500]
    return found[0]


def test_request_approve_then_owner_generates_the_secret_once(
    kit,
    require_approval,
    member,
    member_client,
    owner_client,
    organization,
    client,
    django_capture_on_commit_callbacks,
):
    require_approval()
    page = member_client.get(kit.create_url)
    assert "Justification" in page.content.decode() and "Request" in page.content.decode()

    response = member_client.post(kit.create_url, kit.create_form(owner=member))
    assert response.status_code == 302, response.content.decode()[:2000]
    credential = kit.latest()
    assert credential.status == CredentialStatus.PENDING
    assert not kit.has_secret_material(credential)  # no secret exists while pending
    request = CredentialRequest.objects.get(object_id=credential.pk, kind=kit.key)
    assert request.state == RequestState.PENDING and request.justification == "Nightly export"

    # Before the approval even the owner cannot generate the secret.
    refused = member_client.post(kit.url(credential, "issue"))
    assert refused.status_code == 302 and not kit.has_secret_material(credential)

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert _decide(owner_client, organization, request.pk, "approve", "ok for Q3").status_code == 302
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED and request.comment == "ok for Q3"
    assert [m.to for m in mail.outbox] == [[member.email]]  # the requester hears about it, once
    assert kit.reload(credential).status == CredentialStatus.PENDING  # approved, still no secret

    # Only the owner generates it; a manager cannot.
    assert owner_client.post(kit.url(credential, "issue")).status_code == 403
    shown = member_client.post(kit.url(credential, "issue"))
    assert shown.status_code in (200, 201)
    assert "no-store" in shown["Cache-Control"]
    secret = _reveal_secret(kit, shown)
    credential = kit.reload(credential)
    assert credential.status == CredentialStatus.ACTIVE and credential.review_due_at is not None
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]

    again = member_client.post(kit.url(credential, "issue"))
    assert again.status_code == 302  # back to the page with a message: shown once only
    assert secret not in again.content.decode()
    assert AuditEvent.objects.filter(action=f"{kit.audit_prefix}.secret_issued").count() == 1

    detail = member_client.get(kit.url(credential)).content.decode()
    assert "Approved" in detail and "ok for Q3" in detail and "Nightly export" in detail


def test_request_then_deny(
    kit,
    require_approval,
    member,
    member_client,
    owner_client,
    organization,
    django_capture_on_commit_callbacks,
):
    require_approval()
    member_client.post(kit.create_url, kit.create_form(owner=member))
    credential = kit.latest()
    request = CredentialRequest.objects.get(object_id=credential.pk, kind=kit.key)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        _decide(owner_client, organization, request.pk, "deny", "use the shared key")
    request.refresh_from_db()
    assert request.state == RequestState.DENIED and request.decided_by.email == "owner@acme.test"
    assert kit.reload(credential).status == CredentialStatus.DENIED
    assert len(mail.outbox) == 1 and "denied" in mail.outbox[0].subject.lower()
    member_client.post(kit.url(credential, "issue"))
    assert not kit.has_secret_material(credential)
    assert "use the shared key" in member_client.get(kit.url(credential)).content.decode()


def test_requester_cannot_approve_own_request_in_the_dashboard(
    kit, require_approval, owner, owner_client, admin_client_org, organization
):
    require_approval()
    owner_client.post(kit.create_url, kit.create_form(owner=owner))
    credential = kit.latest()
    request = CredentialRequest.objects.get(object_id=credential.pk, kind=kit.key)
    page = owner_client.get(reverse("org-approvals", kwargs={"org_slug": organization.slug})).content.decode()
    assert "Your own request" in page
    _decide(owner_client, organization, request.pk, "approve")
    request.refresh_from_db()
    assert request.state == RequestState.PENDING
    assert not AuditEvent.objects.filter(action="credentials.request.approved").exists()
    # Another admin may.
    _decide(admin_client_org, organization, request.pk, "approve")
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED and request.decided_by.email == "admin@acme.test"


def test_requester_cannot_approve_own_request_in_the_admin(kit, require_approval, organization):
    require_approval()
    staff_owner = UserFactory(email="staff-owner@acme.test", is_staff=True, is_superuser=True)
    enrol_totp(staff_owner)  # staff use the portal only with a second factor
    MembershipFactory(organization=organization, user=staff_owner, role=Role.OWNER)
    client = Client()
    client.force_login(staff_owner)
    client.post(kit.create_url, kit.create_form(owner=staff_owner))
    credential = kit.latest()
    request = CredentialRequest.objects.get(object_id=credential.pk, kind=kit.key)
    changelist = reverse("admin:credentials_pendingapproval_changelist")
    assert credential.name in client.get(changelist).content.decode()
    response = client.post(
        changelist,
        {"action": "approve_selected", "_selected_action": [request.pk], "apply": "1"},
        follow=True,
    )
    assert "cannot decide on your own request" in response.content.decode()
    request.refresh_from_db()
    assert request.state == RequestState.PENDING

    other_staff = get_user_model().objects.create_superuser(email="staff@portal.test", password="x")
    enrol_totp(other_staff)  # staff use the portal only with a second factor
    other = Client()
    other.force_login(other_staff)
    other.post(changelist, {"action": "approve_selected", "_selected_action": [request.pk], "apply": "1"})
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED and request.decided_by == other_staff
    event = AuditEvent.objects.get(action="credentials.request.approved")
    assert event.actor == other_staff
    # Decided requests leave the queue.
    assert credential.name not in other.get(changelist).content.decode()


def test_member_cannot_reach_the_approvals_page(member_client, organization):
    url = reverse("org-approvals", kwargs={"org_slug": organization.slug})
    assert member_client.get(url).status_code == 403


def test_double_approve_is_refused(
    kit, require_approval, member, member_client, owner_client, admin_client_org, organization
):
    require_approval()
    member_client.post(kit.create_url, kit.create_form(owner=member))
    request = CredentialRequest.objects.get(kind=kit.key)
    _decide(owner_client, organization, request.pk, "approve")
    _decide(admin_client_org, organization, request.pk, "deny")
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED
    assert (
        AuditEvent.objects.filter(action__startswith="credentials.request.")
        .exclude(action="credentials.request.created")
        .count()
        == 1
    )


def test_scope_increase_waits_for_approval_while_old_scopes_keep_working(
    kit, require_approval, member, member_client, owner_client, organization, client
):
    require_approval(approve_scope_increases=True)
    credential, secret = kit.create(owner=member, scopes=["orders:read"])
    url = kit.url(credential, "scopes")
    response = member_client.post(
        url, {"scopes": ["orders:read", "billing:read"], "justification": "invoices"}
    )
    assert response.status_code == 302
    request = CredentialRequest.objects.get(kind=kit.key, object_id=credential.pk)
    assert request.request_type == "scope_increase" and request.previous_scopes == ["orders:read"]
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]
    if kit.key == "m2m_app":
        _bearer, refused = (
            None,
            client.post(
                "/oauth/token",
                {"grant_type": "client_credentials", "scope": "billing:read"},
                HTTP_AUTHORIZATION=_basic(credential.client_id, secret),
            ),
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"

    _decide(owner_client, organization, request.pk, "approve")
    assert kit.scopes_in_use(client, credential, secret) == ["billing:read", "orders:read"]


def test_scope_increase_denied_keeps_old_scopes(
    kit, require_approval, member, member_client, owner_client, organization, client
):
    require_approval(approve_scope_increases=True)
    credential, secret = kit.create(owner=member, scopes=["orders:read"])
    member_client.post(
        kit.url(credential, "scopes"), {"scopes": ["orders:read", "orders:write"], "justification": "x"}
    )
    request = CredentialRequest.objects.get(kind=kit.key, object_id=credential.pk)
    _decide(owner_client, organization, request.pk, "deny")
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]


def test_narrowing_scopes_needs_no_approval(kit, require_approval, member, member_client, client):
    require_approval(approve_scope_increases=True)
    credential, secret = kit.create(owner=member, scopes=["orders:read", "orders:write"])
    member_client.post(kit.url(credential, "scopes"), {"scopes": ["orders:read"]})
    assert not CredentialRequest.objects.exists()
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]
    assert AuditEvent.objects.filter(action=f"{kit.audit_prefix}.scopes_changed").count() == 1


def test_approver_revokes_from_the_approvals_screen(
    kit, require_approval, member, member_client, owner_client, organization, client
):
    require_approval(approve_scope_increases=True)
    credential, secret = kit.create(owner=member, scopes=["orders:read"])
    member_client.post(
        kit.url(credential, "scopes"), {"scopes": ["orders:read", "orders:write"], "justification": "x"}
    )
    request = CredentialRequest.objects.get(kind=kit.key, object_id=credential.pk)
    owner_client.post(
        reverse("org-request-revoke", kwargs={"org_slug": organization.slug, "request_id": request.pk})
    )
    assert kit.reload(credential).status == CredentialStatus.REVOKED
    request.refresh_from_db()
    assert request.state == RequestState.DENIED
    assert kit.scopes_in_use(client, credential, secret) is None
    history = member_client.get(kit.url(credential)).content.decode()
    assert "Denied" in history and "Revoked by an approver" in history


def test_rest_api_refuses_to_create_keys_when_approval_is_required(
    require_approval, owner_client, organization, scopes
):
    require_approval()
    response = owner_client.post(
        f"/api/v1/orgs/{organization.slug}/api-keys/",
        {"name": "x", "scopes": ["orders:read"]},
        content_type="application/json",
    )
    assert response.status_code == 403


def _basic(client_id, secret):
    import base64

    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_approvals_page_query_count_does_not_grow(
    organization, owner_client, member, scopes, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from credentials.api_keys.services import api_key_request
    from tokens.clients.services import m2m_app_request

    def make(n, start):
        for i in range(start, start + n):
            for create in (api_key_request, m2m_app_request):
                create(
                    organization=organization,
                    name=f"r{i}",
                    owner=member,
                    scopes=[],
                    requester=member,
                    justification="x",
                )

    url = reverse("org-approvals", kwargs={"org_slug": organization.slug})
    make(2, 0)
    with CaptureQueriesContext(connection) as small:
        assert owner_client.get(url).status_code == 200
    make(15, 2)
    with django_assert_max_num_queries(len(small)):
        page = owner_client.get(url)
    assert page.content.decode().count("Approve<span") == 34


def _cancel(client, organization, request_id):
    return client.post(
        reverse("org-request-cancel", kwargs={"org_slug": organization.slug, "request_id": request_id})
    )


def test_requester_cancels_a_new_credential_request(
    kit, require_approval, member, member_client, owner_client, organization
):
    require_approval()
    member_client.post(kit.create_url, kit.create_form(owner=member))
    credential = kit.latest()
    request = CredentialRequest.objects.get(object_id=credential.pk, kind=kit.key)
    page = member_client.get(kit.url(credential)).content.decode()
    assert "Cancel my request" in page
    # Only the requester sees the button and may use it; an approver decides instead.
    assert "Cancel my request" not in owner_client.get(kit.url(credential)).content.decode()
    assert _cancel(owner_client, organization, request.pk).status_code == 302
    request.refresh_from_db()
    assert request.state == RequestState.PENDING

    response = _cancel(member_client, organization, request.pk)
    assert response.status_code == 302 and response["Location"] == kit.url(credential)
    request.refresh_from_db()
    assert request.state == RequestState.CANCELLED and request.decided_by == member
    assert kit.reload(credential).status == CredentialStatus.DENIED
    event = AuditEvent.objects.get(action="credentials.request.cancelled")
    assert event.actor == member and event.extra["request_id"] == request.pk
    assert "cancelled by its requester" in member_client.get(kit.url(credential)).content.decode()
    # Nothing is left to approve, and no secret can ever be generated.
    _decide(owner_client, organization, request.pk, "approve")
    request.refresh_from_db()
    assert request.state == RequestState.CANCELLED
    member_client.post(kit.url(credential, "issue"))
    assert not kit.has_secret_material(credential)
    assert _cancel(member_client, organization, request.pk).status_code == 302  # already cancelled
    assert AuditEvent.objects.filter(action="credentials.request.cancelled").count() == 1


def test_requester_cancels_a_scope_increase_and_the_scopes_stay(
    kit, require_approval, member, member_client, organization, client
):
    require_approval(approve_scope_increases=True)
    credential, secret = kit.create(owner=member, scopes=["orders:read"])
    member_client.post(
        kit.url(credential, "scopes"), {"scopes": ["orders:read", "orders:write"], "justification": "x"}
    )
    request = CredentialRequest.objects.get(kind=kit.key, object_id=credential.pk)
    _cancel(member_client, organization, request.pk)
    request.refresh_from_db()
    assert request.state == RequestState.CANCELLED
    assert kit.reload(credential).status == CredentialStatus.ACTIVE
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]
    # A new request can be made once the old one is out of the way.
    member_client.post(
        kit.url(credential, "scopes"), {"scopes": ["orders:read", "orders:write"], "justification": "y"}
    )
    assert (
        CredentialRequest.objects.filter(kind=kit.key, object_id=credential.pk, state="pending").count() == 1
    )


# --- decisions against what happened to the credential meanwhile ---


def _scopes(credential):
    credential = type(credential).objects.get(pk=credential.pk)
    if isinstance(credential, ApiKey):
        return sorted(credential.scopes)
    return sorted(credential.allowed_scopes.values_list("name", flat=True))


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
@pytest.mark.parametrize("narrowed_by", ["review", "scopes page"])
def test_approving_a_scope_increase_does_not_give_back_a_scope_removed_since_the_request(
    organization, owner, admin_user, member, scopes, kind, narrowed_by
):
    policy_update(organization=organization, actor=owner, approve_scope_increases=True)
    make = make_api_key if kind == "api_key" else make_m2m_app
    credential, _ = make(organization, member, scopes=["orders:read", "orders:write"])
    request = credential_request_create(
        credential=credential,
        requester=member,
        request_type=RequestType.SCOPE_INCREASE,
        justification="we now bill",
        requested_scopes=["orders:read", "orders:write", "billing:read"],
    )
    # Meanwhile `orders:write` is taken away (the review finds it unused / a leak).
    if narrowed_by == "review":
        reviews.credential_recertify(credential=credential, actor=owner, scopes=["orders:read"])
    else:
        credential_scopes_set(credential=credential, scopes=["orders:read"], actor=owner)
    assert _scopes(credential) == ["orders:read"]

    # The approver is asked for `billing:read` only (previous -> requested).
    credential_request_approve(request=request, actor=admin_user)
    assert "orders:write" not in _scopes(credential), _scopes(credential)
    assert "billing:read" in _scopes(credential)


def test_an_approver_cannot_take_over_someone_elses_pending_request_and_approve_it_for_themselves(
    organization, owner, admin_user, member, scopes
):
    """Four eyes: under an approval policy, a manager gets a new key only with another person's
    decision. Reassigning a member's waiting key to yourself, then approving it, would give a
    manager a key (its secret shown to them alone) that no second person decided on."""
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    key, request = _members_export_request(organization, member)
    ownership.credential_reassign_owner(credential=key, owner=admin_user, actor=admin_user)
    with pytest.raises(ValidationError) as refused:
        credential_request_approve(request=request, actor=admin_user)
    assert refused.value.code == "four_eyes"
    credential_request_approve(request=request, actor=owner)  # a second person decides


def test_a_member_who_leaves_takes_their_waiting_requests_with_them(
    organization, owner, admin_user, member, scopes
):
    """Left waiting, an approver could still grant them, and the person, rejoining, would generate
    the secret of a key decided about their former membership."""
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    key, request = _members_export_request(organization, member)
    managers_key, managers_request = api_key_request(
        organization=organization,
        name="for the member",
        owner=member,
        scopes=["orders:read"],
        requester=admin_user,
        justification="set up for them",
    )
    membership_remove(membership=Membership.objects.get(user=member, organization=organization), actor=owner)

    for waiting, credential in ((request, key), (managers_request, managers_key)):
        waiting.refresh_from_db()
        assert waiting.state == RequestState.CANCELLED
        assert ApiKey.objects.get(pk=credential.pk).status == "denied"
        with pytest.raises(ValidationError):
            credential_request_approve(request=waiting, actor=admin_user)
    assert (
        AuditEvent.objects.filter(action="credentials.request.cancelled", extra__reason="member_left").count()
        == 2
    )


def test_a_leaver_rejoining_does_not_generate_the_secret_of_a_credential_approved_before_leaving(
    organization, owner, admin_user, member, scopes
):
    """What was approved but not yet issued is not cancelled by the removal (the decision was
    taken), but it is orphaned: the person, re-invited later, does not collect it; an admin
    gives it an owner first (docs/governance.md, "Ownership and orphans")."""
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    key, request = _members_export_request(organization, member)
    credential_request_approve(request=request, actor=admin_user)
    membership_remove(membership=Membership.objects.get(user=member, organization=organization), actor=owner)
    Membership.objects.create(organization=organization, user=member, role=Role.MEMBER)  # re-invited

    with pytest.raises(ValidationError) as refused:
        credential_secret_issue(credential=ApiKey.objects.get(pk=key.pk), actor=member)
    assert refused.value.code == "orphaned"
    assert ApiKey.objects.get(pk=key.pk).status == CredentialStatus.PENDING
    ownership.credential_reassign_owner(credential=ApiKey.objects.get(pk=key.pk), owner=member, actor=owner)
    issued, _plaintext = credential_secret_issue(credential=ApiKey.objects.get(pk=key.pk), actor=member)
    assert issued.status == CredentialStatus.ACTIVE


@pytest.mark.parametrize("overlap", [timedelta(0), timedelta(hours=24)])
def test_a_scope_increase_for_a_key_rotated_since_is_refused_not_given_to_the_retiring_key(
    organization, owner, admin_user, member, scopes, overlap
):
    """The request names the key; a rotation makes a successor, the key in use from then on.
    Approving gave the scopes to the key being retired (stopped already, or stopping after the
    overlap) and the successor kept the old ones. Now the decision is refused (`rotated`); the
    approvers deny it and the member asks again for the successor. No new request is taken for
    the rotated key either."""
    policy_update(organization=organization, actor=owner, approve_scope_increases=True)
    key, _ = make_api_key(organization, member, scopes=["orders:read"])
    asked = {
        "requester": member,
        "request_type": RequestType.SCOPE_INCREASE,
        "justification": "needs to write",
    }
    wider = ["orders:read", "orders:write"]
    request = credential_request_create(credential=key, requested_scopes=wider, **asked)
    successor, _secret = api_key_rotate(api_key=key, actor=member, overlap=overlap)

    with pytest.raises(ValidationError) as refused:
        credential_request_approve(request=request, actor=admin_user)
    assert refused.value.code == "rotated"
    assert ApiKey.objects.get(pk=key.pk).scopes == ["orders:read"]
    request.refresh_from_db()
    assert request.state == RequestState.PENDING
    with pytest.raises(ValidationError) as again:
        credential_request_create(credential=ApiKey.objects.get(pk=key.pk), requested_scopes=wider, **asked)
    assert again.value.code == "rotated"
    credential_request_deny(request=request, actor=admin_user)
    for_successor = credential_request_create(credential=successor, requested_scopes=wider, **asked)
    credential_request_approve(request=for_successor, actor=admin_user)
    assert ApiKey.objects.get(pk=successor.pk).scopes == wider
