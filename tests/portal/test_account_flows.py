"""Account pages around sign-in (allauth, as the portal configures it): a password reset or change
ends the other sessions, reset answers alike for any address, no `next` leaves the portal, allauth's
second-factor pages ask a stale session for step-up, and the flows the portal switched off stay off."""

from __future__ import annotations

import re

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, enrol_totp
from tests.portal.test_account_security import make_stale, password_step, signed_in, totp_code

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase-42"
ELSEWHERE = ["https://evil.test/", "//evil.test/", "/\\evil.test/", "https:evil.test", "http:/\\/evil.test"]


def _reset_path(mailoutbox) -> str:
    link = re.search(r"https?://\S+/accounts/password/reset/key/\S+", mailoutbox[-1].body).group(0)
    return "/" + link.split("/", 3)[3]


def _kept_out(client: Client) -> bool:
    response = client.get(reverse("org-home", args=["acme"]))
    return response.status_code == 302 and reverse("login") in response["Location"]


def _signed_in_with_totp(user, secret: str) -> Client:
    client = Client()
    password_step(client, user.email)
    assert client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)}).status_code == 302
    assert signed_in(client)
    return client


# --- Password reset and change ------------------------------------------------------------------


def test_a_password_reset_ends_the_other_sessions_and_its_link_works_once(member, mailoutbox):
    other = Client()
    password_step(other, member.email)
    anonymous = Client()
    anonymous.post(reverse("account_reset_password"), {"email": member.email})
    path = _reset_path(mailoutbox)
    form = anonymous.get(path)
    assert form.status_code == 302 and "set-password" in form["Location"]
    assert (
        anonymous.post(form["Location"], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code
        == 302
    )
    assert not signed_in(anonymous)
    assert _kept_out(other)
    again = Client()
    response = again.get(path)
    page = again.get(response["Location"]) if response.status_code == 302 else response
    assert b"password1" not in page.content


def test_a_reset_answers_alike_for_a_known_an_unknown_and_a_switched_off_address(member, mailoutbox):
    def page(email: str) -> bytes:
        response = Client().post(reverse("account_reset_password"), {"email": email}, follow=True)
        assert response.status_code == 200
        return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"|nonce="[^"]+"', b"", response.content)

    assert page(member.email) == page("nobody@acme.test")
    assert len(mailoutbox) == 1
    member.is_active = False
    member.save(update_fields=["is_active"])
    assert page(member.email) == page("nobody@acme.test")
    assert len(mailoutbox) == 1


def test_a_password_change_ends_the_other_sessions(member):
    here, there = Client(), Client()
    password_step(here, member.email)
    password_step(there, member.email)
    response = here.post(
        reverse("account_change_password"),
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert _kept_out(there)
    assert here.get(reverse("usersessions_list")).status_code == 200


# --- Redirects stay in the portal ---------------------------------------------------------------


@pytest.mark.parametrize("elsewhere", ELSEWHERE)
def test_sign_in_never_sends_to_another_site(member, elsewhere):
    response = Client().post(
        reverse("login") + "?next=" + elsewhere, {"login": member.email, "password": PASSWORD}
    )
    assert response.status_code == 302 and "evil" not in response["Location"]


@pytest.mark.parametrize("elsewhere", ELSEWHERE)
def test_sign_out_never_sends_to_another_site(member_client, elsewhere):
    response = member_client.post(reverse("logout"), {"next": elsewhere})
    assert "evil" not in response.get("Location", "")


@pytest.mark.parametrize("elsewhere", ELSEWHERE)
def test_step_up_never_sends_to_another_site(member, elsewhere):
    client = Client()
    password_step(client, member.email)
    make_stale(client)
    response = client.post(reverse("account_reauthenticate") + "?next=" + elsewhere, {"password": PASSWORD})
    assert response.status_code == 302 and "evil" not in response["Location"]


@pytest.mark.parametrize("elsewhere", ELSEWHERE)
def test_the_second_factor_never_sends_to_another_site(member, elsewhere):
    secret = enrol_totp(member)
    client = Client()
    client.post(reverse("login") + "?next=" + elsewhere, {"login": member.email, "password": PASSWORD})
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302 and signed_in(client)
    assert "evil" not in response["Location"]


# --- Second factors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, method",
    [
        ("mfa_deactivate_totp", "get"),
        ("mfa_deactivate_totp", "post"),
        ("mfa_generate_recovery_codes", "post"),
        ("mfa_view_recovery_codes", "get"),
        ("mfa_download_recovery_codes", "get"),
        ("mfa_add_webauthn", "get"),
    ],
)
def test_second_factor_pages_ask_a_stale_session_for_step_up(member, name, method):
    secret = enrol_totp(member)
    RecoveryCodes.activate(member)
    client = _signed_in_with_totp(member, secret)
    make_stale(client)
    response = getattr(client, method)(reverse(name))
    assert response.status_code in (302, 303) and "reauthenticate" in response["Location"]
    assert Authenticator.objects.filter(user=member, type=Authenticator.Type.TOTP).exists()


def test_recovery_codes_are_not_downloadable_after_being_shown(member):
    secret = enrol_totp(member)
    codes = RecoveryCodes.activate(member).generate_codes()
    client = _signed_in_with_totp(member, secret)
    assert codes[0].encode() in client.get(reverse("mfa_view_recovery_codes")).content
    assert codes[0].encode() not in client.get(reverse("mfa_download_recovery_codes")).content


def test_new_recovery_codes_void_the_old_ones(member):
    secret = enrol_totp(member)
    old = RecoveryCodes.activate(member).generate_codes()
    client = _signed_in_with_totp(member, secret)
    assert client.post(reverse("mfa_generate_recovery_codes")).status_code == 302
    other = Client()
    password_step(other, member.email)
    other.post(reverse("mfa_authenticate"), {"code": old[0]})
    assert not signed_in(other)


def test_another_persons_passkey_is_not_found(member, owner):
    passkey = Authenticator.objects.create(
        user=owner, type=Authenticator.Type.WEBAUTHN, data={"name": "k", "credential": {}}
    )
    client = Client(raise_request_exception=False)
    password_step(client, member.email)
    assert client.post(reverse("mfa_remove_webauthn", args=[passkey.pk])).status_code == 404
    assert client.post(reverse("mfa_edit_webauthn", args=[passkey.pk]), {"name": "x"}).status_code == 404
    assert Authenticator.objects.filter(pk=passkey.pk).exists()


# --- Flows the portal does not offer ------------------------------------------------------------


def test_codes_by_email_are_off_for_sign_in_and_step_up(member, mailoutbox):
    # allauth sends a page it does not offer back to the password form.
    client = Client(raise_request_exception=False)
    response = client.get(reverse("account_confirm_login_code"))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    password_step(client, member.email)
    make_stale(client)
    for response in (
        client.get(reverse("account_request_reauthentication_code")),
        client.post(reverse("account_request_reauthentication_code")),
    ):
        assert response.status_code == 302 and response["Location"] == reverse("account_reauthenticate")
    assert not mailoutbox
