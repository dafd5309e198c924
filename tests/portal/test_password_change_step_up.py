"""Changing the password needs step-up, like signing the other sessions out.

What was wrong: /accounts/password/change/ asked for the current password alone. A new password
signs every other session out (Django's session hash), so whoever held a stale, stolen session and
knew the password could sign the real person out everywhere and keep the account, even when the
account has a second factor (docs/account-security.md: the password alone is no step-up then).
"""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, enrol_totp
from tests.portal.test_account_security import make_stale, password_step, signed_in, totp_code

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "attacker-chosen-passphrase-42"
CHANGE = {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}


def _signed_in_with_totp(user, secret: str, at_offset: int = 0) -> Client:
    client = Client(HTTP_USER_AGENT=f"browser-{at_offset}")
    password_step(client, user.email)
    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret, at=time.time() + at_offset)})
    assert signed_in(client)
    return client


def test_a_stale_session_with_the_password_cannot_change_it_for_an_account_with_a_second_factor(
    owner, settings
):
    settings.MFA_TOTP_TOLERANCE = 1  # two sign-ins, two distinct codes
    secret = enrol_totp(owner)
    stolen = _signed_in_with_totp(owner, secret, 0)
    real = _signed_in_with_totp(owner, secret, 30)
    make_stale(stolen)

    response = stolen.post(reverse("account_change_password"), CHANGE)

    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_reauthenticate"))
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)
    assert real.get(reverse("org-home", args=["acme"])).status_code == 200


def test_a_stale_session_without_a_second_factor_confirms_the_password_first(member):
    client = Client()
    password_step(client, member.email)
    make_stale(client)

    page = client.get(reverse("account_change_password"))
    assert page.status_code == 302 and page["Location"].startswith(reverse("account_reauthenticate"))
    assert client.post(reverse("account_change_password"), CHANGE)["Location"].startswith(
        reverse("account_reauthenticate")
    )
    member.refresh_from_db()
    assert member.check_password(PASSWORD)

    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert client.post(reverse("account_change_password"), CHANGE).status_code == 302
    member.refresh_from_db()
    assert member.check_password(NEW_PASSWORD)


def test_after_step_up_with_the_second_factor_the_password_changes(owner, settings):
    settings.MFA_TOTP_TOLERANCE = 1
    secret = enrol_totp(owner)
    client = _signed_in_with_totp(owner, secret, -30)
    make_stale(client)
    client.post(reverse("mfa_reauthenticate"), {"code": totp_code(secret)})

    response = client.post(reverse("account_change_password"), CHANGE)

    assert response.status_code == 302 and not response["Location"].startswith(reverse("mfa_reauthenticate"))
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)


def test_a_fresh_sign_in_is_not_asked_again(owner_client):
    assert owner_client.get(reverse("account_change_password")).status_code == 200
