"""Memberships and invitations: roles, the last-owner rule, single-use invitations, audit events."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEvent, Invitation, Membership, Role, User
from portal.services import organizations as svc
from tests.factories import MembershipFactory, UserFactory


def _events(organization, action):
    return AuditEvent.objects.filter(organization=organization, action=action)


@pytest.mark.django_db
class TestLastOwner:
    def test_last_owner_cannot_be_demoted(self, organization, owner):
        membership = Membership.objects.get(user=owner, organization=organization)
        with pytest.raises(ValidationError, match="last owner"):
            svc.membership_change_role(membership=membership, role=Role.ADMIN, actor=owner)
        membership.refresh_from_db()
        assert membership.role == Role.OWNER
        assert not _events(organization, "portal.membership.role_changed").exists()

    def test_last_owner_cannot_be_removed(self, organization, owner, admin_user):
        membership = Membership.objects.get(user=owner, organization=organization)
        with pytest.raises(ValidationError, match="last owner"):
            svc.membership_remove(membership=membership, actor=admin_user)
        assert Membership.objects.filter(pk=membership.pk).exists()

    def test_last_owner_cannot_leave_through_the_dashboard(self, owner_client, organization, owner):
        membership = Membership.objects.get(user=owner, organization=organization)
        response = owner_client.post(
            reverse("org-member-remove", args=[organization.slug, membership.pk]), follow=True
        )
        assert "last owner cannot be removed" in response.content.decode()
        assert Membership.objects.filter(pk=membership.pk).exists()

    def test_an_owner_can_be_demoted_when_another_remains(self, organization, owner, member):
        other = Membership.objects.get(user=member, organization=organization)
        svc.membership_change_role(membership=other, role=Role.OWNER, actor=owner)
        first = Membership.objects.get(user=owner, organization=organization)
        svc.membership_change_role(membership=first, role=Role.MEMBER, actor=owner)
        assert set(Membership.objects.filter(organization=organization).values_list("role", flat=True)) == {
            Role.OWNER,
            Role.MEMBER,
        }
        event = _events(organization, "portal.membership.role_changed").first()
        assert event.actor == owner and event.extra == {"from": "owner", "to": "member"}

    def test_admin_cannot_grant_owner(self, organization, admin_user, member):
        admin_membership = Membership.objects.get(user=admin_user, organization=organization)
        target = Membership.objects.get(user=member, organization=organization)
        with pytest.raises(ValidationError, match="Only an owner"):
            svc.membership_change_role(
                membership=target, role=Role.OWNER, actor=admin_user, actor_membership=admin_membership
            )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_demotions_keep_one_owner(require_postgres, organization):
    a = MembershipFactory(organization=organization, role=Role.OWNER)
    b = MembershipFactory(organization=organization, role=Role.OWNER)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(target, actor):
        try:
            barrier.wait()
            svc.membership_change_role(membership=target, role=Role.MEMBER, actor=actor)
            outcomes.append("ok")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=demote, args=(a, b.user)),
        threading.Thread(target=demote, args=(b, a.user)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    assert Membership.objects.filter(organization=organization, role=Role.OWNER).count() == 1
    assert _events(organization, "portal.membership.role_changed").count() == 1


@pytest.mark.django_db
class TestRolesAndPermissions:
    @pytest.mark.parametrize("name", ["org-audit"])
    def test_members_get_403_on_manager_pages(self, member_client, organization, name):
        assert member_client.get(reverse(name, args=[organization.slug])).status_code == 403

    def test_members_cannot_invite_or_change_roles(self, member_client, organization, owner):
        response = member_client.post(
            reverse("org-invite", args=[organization.slug]), {"email": "x@example.test", "role": "member"}
        )
        assert response.status_code == 403
        owner_membership = Membership.objects.get(user=owner, organization=organization)
        response = member_client.post(
            reverse("org-member-role", args=[organization.slug, owner_membership.pk]), {"role": "member"}
        )
        assert response.status_code == 403
        assert not Invitation.objects.exists()

    def test_member_cannot_remove_others_but_can_leave(self, member_client, organization, owner, member):
        owner_membership = Membership.objects.get(user=owner, organization=organization)
        url = reverse("org-member-remove", args=[organization.slug, owner_membership.pk])
        assert member_client.post(url).status_code == 403
        mine = Membership.objects.get(user=member, organization=organization)
        response = member_client.post(reverse("org-member-remove", args=[organization.slug, mine.pk]))
        assert response.status_code == 302
        assert not Membership.objects.filter(pk=mine.pk).exists()
        event = _events(organization, "portal.membership.removed").get()
        assert event.actor == member and event.extra["left"] is True

    def test_admin_changes_role_and_removes_member(self, admin_client_org, organization, member):
        mine = Membership.objects.get(user=member, organization=organization)
        admin_client_org.post(
            reverse("org-member-role", args=[organization.slug, mine.pk]), {"role": "admin"}
        )
        mine.refresh_from_db()
        assert mine.role == Role.ADMIN
        response = admin_client_org.post(
            reverse("org-member-remove", args=[organization.slug, mine.pk]), follow=True
        )
        assert f"{member.email} was removed" in response.content.decode()
        assert _events(organization, "portal.membership.role_changed").count() == 1
        assert _events(organization, "portal.membership.removed").count() == 1

    def test_members_page_lists_people(self, member_client, organization, owner, member):
        body = member_client.get(reverse("org-members", args=[organization.slug])).content.decode()
        assert owner.email in body and member.email in body
        assert "Invite someone" not in body

    @pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
    def test_an_owner_or_admin_can_leave_from_the_members_page(self, organization, owner, role, client):
        """`members.remove`: "anyone may leave". Owners and admins see the members table with a
        Remove button for everyone else: their own row carries the Leave form (no JS needed)."""
        person = MembershipFactory(
            organization=organization, role=role, user=UserFactory(email=f"{role}2@acme.test")
        )
        client.force_login(person.user)
        html = client.get(reverse("org-members", args=[organization.slug])).content.decode()
        own_remove = reverse("org-member-remove", args=[organization.slug, person.pk])
        form = re.search(rf'<form[^>]*action="{re.escape(own_remove)}"[^>]*>(.*?)</form>', html, re.S)
        assert form, f"an {role} has no form to leave the organisation on the members page"
        assert "Leave organisation" in form.group(1)
        # and the service allows it (another owner remains)
        response = client.post(own_remove)
        assert response.status_code == 302 and response["Location"] == reverse("dashboard")
        assert not Membership.objects.filter(pk=person.pk).exists()
        assert _events(organization, "portal.membership.removed").get().extra["left"] is True

    def test_the_last_owner_is_offered_leave_and_told_why_not(self, owner_client, organization, owner):
        """The page does not decide who may leave, the service does: its refusal is a message."""
        mine = Membership.objects.get(user=owner, organization=organization)
        own_remove = reverse("org-member-remove", args=[organization.slug, mine.pk])
        html = owner_client.get(reverse("org-members", args=[organization.slug])).content.decode()
        assert re.search(rf'<form[^>]*action="{re.escape(own_remove)}"', html)
        response = owner_client.post(own_remove, follow=True)
        assert response.status_code == 200
        assert response.redirect_chain == [(reverse("org-members", args=[organization.slug]), 302)]
        assert (
            "The organisation&#x27;s last owner cannot be removed. Make someone else an owner first, "
            "then leave." in response.content.decode()
        )
        assert Membership.objects.filter(pk=mine.pk).exists()


def _invite(client, organization, email="new.person@example.test", role="member"):
    mail.outbox.clear()
    response = client.post(reverse("org-invite", args=[organization.slug]), {"email": email, "role": role})
    assert response.status_code == 302, response.content
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/invitations/\S+/", mail.outbox[0].body).group(0)
    return link[link.index("/invitations/") :]


@pytest.mark.django_db(transaction=True)
class TestInvitations:
    def test_invitation_creates_account_and_membership_once(self, owner_client, organization, client):
        path = _invite(owner_client, organization)
        invitation = Invitation.objects.get()
        token = path.rstrip("/").rsplit("/", 1)[1]
        assert token not in invitation.token_digest  # only a keyed digest is stored
        page = client.get(path)
        assert page.status_code == 200 and "Create your account" in page.content.decode()
        response = client.post(
            path,
            {
                "full_name": "New Person",
                "password1": "a-long-passphrase-1",
                "password2": "a-long-passphrase-1",
            },
        )
        assert response.status_code == 302 and response["Location"] == reverse(
            "org-home", args=[organization.slug]
        )
        user = User.objects.get(email="new.person@example.test")
        assert Membership.objects.get(user=user, organization=organization).role == Role.MEMBER
        # Replaying the link does nothing more.
        client.logout()
        replay = client.get(path)
        assert replay.status_code == 410 and "already been accepted" in replay.content.decode()
        # Accepted again by the same person (a double click): their membership, nothing written.
        assert svc.invitation_accept(token=token, user=user) == Membership.objects.get(user=user)
        actions = list(AuditEvent.objects.filter(organization=organization).values_list("action", flat=True))
        assert actions.count("portal.invitation.created") == 1
        assert actions.count("portal.invitation.accepted") == 1
        assert actions.count("portal.membership.created") == 1

    def test_existing_user_signs_in_and_accepts(self, owner_client, organization, client):
        existing = UserFactory(email="known@example.test")
        path = _invite(owner_client, organization, email="Known@Example.test", role="admin")
        assert "Sign in as known@example.test" in client.get(path).content.decode()
        client.force_login(existing)
        response = client.post(path)
        assert response.status_code == 302
        assert Membership.objects.get(user=existing, organization=organization).role == Role.ADMIN

    def test_wrong_account_cannot_accept(self, owner_client, organization, client):
        path = _invite(owner_client, organization, email="right@example.test")
        client.force_login(UserFactory(email="wrong@example.test"))
        response = client.post(path, follow=True)
        assert "was sent to right@example.test" in response.content.decode()
        assert not Membership.objects.filter(
            organization=organization, user__email="wrong@example.test"
        ).exists()

    def test_expired_invitation_is_refused(self, owner_client, organization, client):
        path = _invite(owner_client, organization)
        Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        response = client.get(path)
        assert response.status_code == 410 and "expired" in response.content.decode()
        response = client.post(
            path, {"full_name": "X", "password1": "a-long-passphrase-1", "password2": "a-long-passphrase-1"}
        )
        assert response.status_code == 410
        assert not User.objects.filter(email="new.person@example.test").exists()

    def test_revoked_invitation_is_refused(self, owner_client, organization, client):
        path = _invite(owner_client, organization)
        invitation = Invitation.objects.get()
        owner_client.post(reverse("org-invitation-revoke", args=[organization.slug, invitation.pk]))
        assert client.get(path).status_code == 410
        assert _events(organization, "portal.invitation.revoked").count() == 1

    def test_unknown_token_is_404(self, client, db):
        assert client.get("/invitations/not-a-real-token/").status_code == 404

    def test_duplicate_open_invitation_is_a_form_error(self, owner_client, organization):
        _invite(owner_client, organization, email="twice@example.test")
        response = owner_client.post(
            reverse("org-invite", args=[organization.slug]), {"email": "twice@example.test", "role": "member"}
        )
        assert response.status_code == 400
        assert "open invitation for this address already exists" in response.content.decode()
        assert Invitation.objects.count() == 1

    def test_inviting_a_member_is_a_form_error(self, owner_client, organization, member):
        response = owner_client.post(
            reverse("org-invite", args=[organization.slug]), {"email": member.email, "role": "member"}
        )
        assert response.status_code == 400 and "already a member" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_rolled_back_change_leaves_no_audit_event(organization, owner, member):
    target = Membership.objects.get(user=member, organization=organization)
    mail.outbox.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        svc.membership_change_role(membership=target, role=Role.ADMIN, actor=owner)
        svc.invitation_create(organization=organization, email="rb@example.test", role="member", actor=owner)
        assert AuditEvent.objects.filter(organization=organization).count() == 2
        raise RuntimeError("boom")
    assert not AuditEvent.objects.filter(organization=organization).exists()
    target.refresh_from_db()
    assert target.role == Role.MEMBER
    assert mail.outbox == []  # the invitation email is sent only on commit


def test_resend_an_invitation_issues_a_new_link_shown_once_and_emails_it(
    owner_client, organization, owner, mailoutbox, django_capture_on_commit_callbacks
):
    import re as _re

    from portal.models import AuditEvent, Invitation
    from portal.services.organizations import invitation_create, invitation_for_token

    invitation, old_token = invitation_create(
        organization=organization, email="new@acme.test", role="member", actor=owner
    )
    mailoutbox.clear()
    url = reverse(
        "org-invitation-resend", kwargs={"org_slug": organization.slug, "invitation_id": invitation.pk}
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    page = response.content.decode()
    link = _re.search(r'<code id="invitation-link">([^<]+)</code>', page).group(1)
    assert 'data-copy-target="invitation-link"' in page
    new_token = link.rstrip("/").rsplit("/", 1)[1]
    assert invitation_for_token(new_token).pk == invitation.pk
    assert invitation_for_token(old_token) is None  # the old link stops working
    assert len(mailoutbox) == 1 and link in mailoutbox[0].body
    assert AuditEvent.objects.filter(action="portal.invitation.resent").count() == 1
    assert Invitation.objects.count() == 1


def test_a_member_cannot_resend_and_a_closed_invitation_is_refused(
    member_client, owner_client, organization, owner
):
    from portal.services.organizations import invitation_create, invitation_revoke

    invitation, _ = invitation_create(
        organization=organization, email="new@acme.test", role="member", actor=owner
    )
    url = reverse(
        "org-invitation-resend", kwargs={"org_slug": organization.slug, "invitation_id": invitation.pk}
    )
    assert member_client.post(url).status_code == 403
    invitation_revoke(invitation=invitation, actor=owner)
    response = owner_client.post(url, follow=True)
    assert "no longer open" in response.content.decode()
