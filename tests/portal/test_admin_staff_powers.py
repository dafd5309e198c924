"""Only a superuser hands out the platform's own powers in the admin: staff who may change accounts or
groups give nobody, themselves least of all, the admin, superuser, a group or a permission, and sign
no superuser or other staff account out."""

from __future__ import annotations

import pytest
from allauth.usersessions.models import UserSession
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from tests.factories import enrol_totp

pytestmark = pytest.mark.django_db


def _user_form(user, **changes) -> dict:
    return {
        "email": user.email,
        "full_name": user.full_name,
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        **changes,
    }


def test_staff_who_may_change_users_cannot_make_themselves_superuser(staff_with):
    """STAFF_POWERS are read-only to a staff user who is no superuser, on their own account too."""
    client = staff_with("portal.view_user", "portal.change_user")
    me = client.user
    url = reverse("admin:portal_user_change", args=[me.pk])
    assert client.get(url).status_code == 200
    change_user = Permission.objects.get(content_type__app_label="portal", codename="change_user")
    client.post(url, _user_form(me, is_staff="on", is_superuser="on", user_permissions=[change_user.pk]))
    me.refresh_from_db()
    assert not me.is_superuser, "a non-superuser staff account made itself superuser"


def test_staff_who_may_change_users_still_switch_an_account_off(staff_with, member):
    """What the permission is for still works: `is_active` stays editable."""
    client = staff_with("portal.view_user", "portal.change_user")
    url = reverse("admin:portal_user_change", args=[member.pk])
    response = client.post(url, {k: v for k, v in _user_form(member).items() if k != "is_active"})
    member.refresh_from_db()
    assert response.status_code == 302 and not member.is_active


def _try_to_take_over(client, account):
    """Change the account's address, then its password; return the password form's answer."""
    client.post(
        reverse("admin:portal_user_change", args=[account.pk]), _user_form(account, email="mine@evil.test")
    )
    return client.post(
        reverse("admin:auth_user_password_change", args=[account.pk]),
        {"password1": "taken-over-1234", "password2": "taken-over-1234"},
    )


def test_staff_who_are_no_superuser_cannot_change_a_superusers_account(staff_with):
    """A superuser's address or password is the way into every power: only a superuser changes it."""
    root = get_user_model().objects.create_superuser(email="root@portal.test", password="x")
    client = staff_with("portal.view_user", "portal.change_user")
    password = _try_to_take_over(client, root)
    root.refresh_from_db()
    assert root.email == "root@portal.test"
    assert not root.check_password("taken-over-1234") and password.status_code == 403


def test_staff_who_are_no_superuser_cannot_change_another_staff_account(staff_with):
    """Nor another staff account: resetting a peer's password would take their permissions over."""
    peer = staff_with(
        "portal.view_user", "portal.change_user", "portal.delete_user", email="peer@portal.test"
    ).user
    client = staff_with("portal.view_user", "portal.change_user")
    password = _try_to_take_over(client, peer)
    peer.refresh_from_db()
    assert peer.email == "peer@portal.test"
    assert not peer.check_password("taken-over-1234") and password.status_code == 403


def test_staff_who_may_change_groups_cannot_grant_their_own_group_new_powers(staff_with):
    """Groups are written by superusers only: a group may hold any permission at all."""
    client = staff_with("auth.view_group", "auth.change_group")
    support = Group.objects.create(name="support")
    client.user.groups.add(support)
    change_user = Permission.objects.get(content_type__app_label="portal", codename="change_user")
    client.post(
        reverse("admin:auth_group_change", args=[support.pk]),
        {"name": "support", "permissions": [change_user.pk]},
    )
    assert not support.permissions.filter(pk=change_user.pk).exists(), (
        "a staff user gave their own group a permission they did not hold"
    )


def _signed_in_somewhere(user) -> UserSession:
    client = Client()
    client.force_login(user)
    return UserSession.objects.create(
        user=user, session_key=client.session.session_key, ip="127.0.0.1", user_agent="test"
    )


def test_staff_who_are_no_superuser_sign_out_neither_a_superuser_nor_another_staff_account(
    staff_with, member
):
    """*Sign the selected users out everywhere* keeps the change form's rule row by row: the
    superuser's and the peer's sessions stay, the member's end, and the message counts the skipped."""
    root = get_user_model().objects.create_superuser(email="root@portal.test", password="x")
    enrol_totp(root)
    peer = staff_with("portal.view_user", email="peer@portal.test").user
    for user in (root, peer, member):
        _signed_in_somewhere(user)
    client = staff_with("portal.view_user", "portal.change_user")
    response = client.post(
        reverse("admin:portal_user_changelist"),
        {"action": "end_sessions", "_selected_action": [root.pk, peer.pk, member.pk]},
        follow=True,
    )
    assert set(UserSession.objects.values_list("user__email", flat=True)) == {root.email, peer.email}
    assert [str(m) for m in response.context["messages"]] == [
        "Ended 1 session(s). Skipped 2 account(s) that only a superuser may sign out (superusers and "
        "other staff)."
    ]
