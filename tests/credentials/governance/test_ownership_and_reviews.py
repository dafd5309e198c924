"""Owner removed → orphaned → reassigned, or → suspended after the grace → restored; reviews and overdue."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from credentials.governance.approvals import credential_request_approve, credential_request_create
from credentials.governance.models import CredentialStatus, SuspensionReason
from portal.models import AuditEvent, Membership
from portal.principal import INVALID_CREDENTIAL
from tests.factories import enrol_totp
from tests.support.admin_forms import organization_form

pytestmark = pytest.mark.django_db


def _remove(owner_client, organization, user):
    membership = Membership.objects.get(organization=organization, user=user)
    response = owner_client.post(
        reverse("org-member-remove", kwargs={"org_slug": organization.slug, "member_id": membership.pk})
    )
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()


def _travel(kit, credential, **fields):
    """Move a credential's timestamps into the past instead of sleeping."""
    kit.model.objects.filter(pk=credential.pk).update(**fields)


def test_removed_owner_orphans_the_credential_which_keeps_working_until_reassigned(
    kit, member, admin_user, owner, owner_client, organization, client
):
    credential, secret = kit.create(owner=member)
    _remove(owner_client, organization, member)
    credential = kit.reload(credential)
    assert credential.orphaned_at is not None and credential.status == CredentialStatus.ACTIVE
    event = AuditEvent.objects.get(action=f"{kit.audit_prefix}.orphaned")
    assert event.actor == owner and event.extra["former_owner"] == member.email
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]

    page = owner_client.get(
        reverse("org-inventory", kwargs={"org_slug": organization.slug}) + "?flag=orphaned"
    )
    assert credential.name in page.content.decode()

    response = owner_client.post(kit.url(credential, "reassign"), {"owner-owner": admin_user.pk})
    assert response.status_code == 302
    credential = kit.reload(credential)
    assert credential.orphaned_at is None and credential.owner == admin_user
    event = AuditEvent.objects.get(action=f"{kit.audit_prefix}.owner_reassigned")
    assert event.actor == owner and event.extra["orphan_cleared"] is True


def test_orphan_past_the_grace_is_suspended_then_restored_by_reassignment(
    kit, member, admin_user, owner_client, organization, client
):
    credential, secret = kit.create(owner=member)
    _remove(owner_client, organization, member)
    call_command("send_credential_notices")
    assert kit.reload(credential).status == CredentialStatus.ACTIVE  # still within the 14-day grace

    _travel(kit, credential, orphaned_at=timezone.now() - timedelta(days=15))
    call_command("send_credential_notices")
    credential = kit.reload(credential)
    assert credential.status == CredentialStatus.SUSPENDED
    assert credential.suspension_reason == SuspensionReason.ORPHANED
    event = AuditEvent.objects.get(action=f"{kit.audit_prefix}.suspended")
    assert event.actor is None and event.actor_label == "system" and event.extra["reason"] == "orphaned"
    assert kit.scopes_in_use(client, credential, secret) is None

    call_command("send_credential_notices")  # idempotent: nothing more happens
    assert AuditEvent.objects.filter(action=f"{kit.audit_prefix}.suspended").count() == 1

    owner_client.post(kit.url(credential, "reassign"), {"owner-owner": admin_user.pk})
    credential = kit.reload(credential)
    assert credential.status == CredentialStatus.ACTIVE and credential.orphaned_at is None
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]


def test_review_due_then_recertified_with_narrower_scopes(kit, member, member_client, organization, client):
    credential, secret = kit.create(owner=member, scopes=["orders:read", "orders:write"])
    credential = kit.reload(credential)
    assert credential.review_due_at > timezone.now() + timedelta(days=89)
    _travel(kit, credential, review_due_at=timezone.now() + timedelta(days=3))
    detail = member_client.get(kit.url(credential)).content.decode()
    assert "Still needed; scopes still right" in detail

    member_client.post(
        kit.url(credential, "recertify"),
        {"review-shown": "orders:read orders:write", "review-scopes": ["orders:read"]},
    )
    credential = kit.reload(credential)
    assert credential.last_reviewed_by == member
    assert credential.review_due_at > timezone.now() + timedelta(days=89)
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]
    event = AuditEvent.objects.get(action=f"{kit.audit_prefix}.recertified")
    assert event.actor == member and event.extra["scopes"] == {
        "from": ["orders:read", "orders:write"],
        "to": ["orders:read"],
    }


def test_review_cannot_add_scopes(kit, member, member_client, client):
    credential, secret = kit.create(owner=member, scopes=["orders:read"])
    member_client.post(
        kit.url(credential, "recertify"),
        {"review-shown": "orders:read", "review-scopes": ["orders:read", "orders:write"]},
    )
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]
    assert not AuditEvent.objects.filter(action=f"{kit.audit_prefix}.recertified").exists()


def _review_form_shown(client, kit, credential) -> str:
    """Return the scopes the credential's page lists in its review form (its hidden `shown`)."""
    page = client.get(kit.url(credential)).content.decode()
    found = re.search(r'<input type="hidden" name="review-shown" value="([^"]*)"', page)
    assert found is not None, "the review form carries the scopes it lists"
    return found.group(1)


def _with_waiting_increase(kit, member):
    """A member's credential holding orders:read and billing:read, and their request for orders:write."""
    credential, secret = kit.create(owner=member, scopes=["orders:read", "billing:read"])
    request = credential_request_create(
        credential=credential,
        requester=member,
        request_type="scope_increase",
        justification="needs writes",
        requested_scopes=["orders:read", "billing:read", "orders:write"],
    )
    return credential, secret, request


def test_a_review_sent_from_a_page_read_before_an_approved_scope_increase_keeps_it(
    kit, member, member_client, admin_user, client
):
    """The review removes what its page listed and the reviewer unticked, from the scopes as they
    are when it is sent: a scope approved after the page was read, which the reviewer never saw, stays."""
    credential, secret, request = _with_waiting_increase(kit, member)
    shown = _review_form_shown(member_client, kit, credential)  # the owner opens the page, ...
    assert shown == "billing:read orders:read"
    credential_request_approve(request=request, actor=admin_user)  # ... an admin approves meanwhile, ...
    response = member_client.post(  # ... and the owner unticks billing:read and sends the review.
        kit.url(credential, "recertify"), {"review-shown": shown, "review-scopes": ["orders:read"]}
    )
    assert response.status_code == 302
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read", "orders:write"]
    event = AuditEvent.objects.get(action=f"{kit.audit_prefix}.recertified")
    assert event.extra["scopes"] == {
        "from": ["billing:read", "orders:read", "orders:write"],
        "to": ["orders:read", "orders:write"],
    }


def test_a_review_form_that_does_not_say_what_it_listed_is_refused(kit, member, member_client, client):
    """A page older than the `shown` field cannot say which scopes its reviewer saw: it is refused
    (review again), never read as "remove every scope not ticked"."""
    credential, secret = kit.create(owner=member, scopes=["orders:read", "orders:write"])
    response = member_client.post(
        kit.url(credential, "recertify"), {"review-scopes": ["orders:read"]}, follow=True
    )
    assert "This page was out of date" in " ".join(str(m) for m in response.context["messages"])
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read", "orders:write"]
    assert not AuditEvent.objects.filter(action=f"{kit.audit_prefix}.recertified").exists()


def test_the_scopes_page_read_before_an_approved_increase_keeps_it(
    kit, member, member_client, admin_user, client
):
    """The "Change the scopes" page applies what it changed to the scopes as they are when it is sent:
    narrowing from a page read before an increase was approved no longer drops the new scope."""
    credential, secret, request = _with_waiting_increase(kit, member)
    page = member_client.get(kit.url(credential, "scopes")).content.decode()
    shown = re.search(r'<input type="hidden" name="shown" value="([^"]*)"', page).group(1)
    assert shown == "billing:read orders:read"
    credential_request_approve(request=request, actor=admin_user)
    response = member_client.post(kit.url(credential, "scopes"), {"shown": shown, "scopes": ["orders:read"]})
    assert response.status_code == 302
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read", "orders:write"]
    # A script that sends no `shown` still sets the whole list, as before.
    member_client.post(kit.url(credential, "scopes"), {"scopes": ["orders:read"]})
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]


def test_overdue_is_flagged_then_suspended_after_grace_then_restored_by_review(
    kit, member, member_client, owner_client, organization, client
):
    credential, secret = kit.create(owner=member)
    _travel(kit, credential, review_due_at=timezone.now() - timedelta(days=2))
    inventory = reverse("org-inventory", kwargs={"org_slug": organization.slug})
    assert credential.name in owner_client.get(inventory + "?flag=review_overdue").content.decode()
    call_command("send_credential_notices")
    assert kit.reload(credential).status == CredentialStatus.ACTIVE  # flagged, not yet suspended

    _travel(kit, credential, review_due_at=timezone.now() - timedelta(days=15))
    call_command("apply_credential_policies")
    credential = kit.reload(credential)
    assert credential.status == CredentialStatus.SUSPENDED
    assert credential.suspension_reason == SuspensionReason.REVIEW_OVERDUE
    assert kit.scopes_in_use(client, credential, secret) is None

    member_client.post(
        kit.url(credential, "recertify"), {"review-shown": "orders:read", "review-scopes": ["orders:read"]}
    )
    credential = kit.reload(credential)
    assert credential.status == CredentialStatus.ACTIVE
    assert kit.scopes_in_use(client, credential, secret) == ["orders:read"]


def test_outsider_cannot_recertify(kit, member, admin_user, organization):
    from django.test import Client

    from tests.factories import MembershipFactory

    credential, _secret = kit.create(owner=member)
    other = MembershipFactory(organization=organization).user
    client = Client()
    client.force_login(other)
    assert (
        client.post(kit.url(credential, "recertify"), {"review-scopes": ["orders:read"]}).status_code == 403
    )
    assert kit.reload(credential).last_reviewed_at is None


def test_policy_grace_is_per_organisation(kit, member, owner, owner_client, organization, require_approval):
    require_approval(orphan_grace_days=30)
    credential, _secret = kit.create(owner=member)
    _remove(owner_client, organization, member)
    _travel(kit, credential, orphaned_at=timezone.now() - timedelta(days=15))
    call_command("apply_credential_policies")
    assert kit.reload(credential).status == CredentialStatus.ACTIVE


def test_suspended_fails_exactly_like_revoked(kit, member, owner, client):
    """Same 401 body on whoami; for apps also the same token-endpoint answer and introspection."""
    from credentials.governance.reviews import credential_revoke, credential_suspend

    suspended, suspended_secret = kit.create(owner=member, name="suspended")
    revoked, revoked_secret = kit.create(owner=member, name="revoked")
    tokens = {}
    if kit.key == "m2m_app":
        tokens = {
            "suspended": kit.bearer(client, suspended, suspended_secret)[0],
            "revoked": kit.bearer(client, revoked, revoked_secret)[0],
        }
    credential_suspend(credential=suspended, actor=owner, reason=SuspensionReason.MANUAL)
    credential_revoke(credential=revoked, actor=owner, reason="test")

    if kit.key == "api_key":
        answers = [whoami_answer(client, suspended_secret), whoami_answer(client, revoked_secret)]
        assert (
            answers[0]
            == answers[1]
            == (401, {"detail": INVALID_CREDENTIAL, "code": "authentication_failed"}, 'Bearer realm="api"')
        )
        verifier, _ = kit.create(owner=owner, scopes=["orders:read"], name="verifier")
        from credentials.api_keys.verification import api_key_verify

        assert api_key_verify(suspended_secret).code == api_key_verify(revoked_secret).code == "revoked"
    else:
        token_answers = [
            kit.bearer(client, c, s)[1] for c, s in ((suspended, suspended_secret), (revoked, revoked_secret))
        ]
        assert token_answers[0].status_code == token_answers[1].status_code == 401
        assert (
            token_answers[0].json()
            == token_answers[1].json()
            == {
                "error": "invalid_client",
                "error_description": "Client authentication failed.",
            }
        )
        answers = [whoami_answer(client, tokens["suspended"]), whoami_answer(client, tokens["revoked"])]
        assert (
            answers[0] == answers[1]
            and answers[0][0] == 401
            and answers[0][1] == {"detail": INVALID_CREDENTIAL, "code": "authentication_failed"}
        )
        # Introspection by a working application of the same organisation.
        caller, caller_secret = kit.create(owner=owner, name="resource server")
        import base64

        auth = "Basic " + base64.b64encode(f"{caller.client_id}:{caller_secret}".encode()).decode()
        for token in tokens.values():
            response = client.post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=auth)
            assert response.json() == {"active": False}


def whoami_answer(client, bearer):
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {bearer}")
    return response.status_code, response.json(), response.get("WWW-Authenticate")


def test_removing_a_member_in_the_admin_orphans_their_credentials(kit, owner, member, organization):
    from django.contrib.auth import get_user_model
    from django.test import Client

    credential, _secret = kit.create(owner=member)
    staff = get_user_model().objects.create_superuser(email="staff@portal.test", password="x")
    enrol_totp(staff)  # staff use the portal only with a second factor
    client = Client()
    client.force_login(staff)
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, prefixes = organization_form(client.get(url), organization)
    leaving = Membership.objects.get(user=member, organization=organization)
    data[f"{prefixes[leaving.pk]}-DELETE"] = "on"
    response = client.post(url, data)
    assert response.status_code == 302
    assert not Membership.objects.filter(user=member, organization=organization).exists()
    credential = kit.reload(credential)
    assert credential.orphaned_at is not None
    assert AuditEvent.objects.get(action=f"{kit.audit_prefix}.orphaned").actor == staff
