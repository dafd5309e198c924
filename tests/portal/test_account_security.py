"""Account security: TOTP and recovery-code login, the MFA policy, step-up, sessions and timeouts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import struct
import time

import pytest
from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY as AUTH_RECORDS
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.usersessions.models import UserSession
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from portal.account_security.events import LOGIN_AT, SEEN_AT
from portal.models import AuditEvent, MfaRequirement, Role
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    ScopeFactory,
    UserFactory,
    enrol_totp,
    make_api_key,
    make_m2m_app,
)

pytestmark = pytest.mark.django_db


def totp_code(secret: str, *, at: float | None = None, margin: float = 3.0) -> str:
    """Compute an RFC 6238 code (SHA-1, 30 s, 6 digits) independently of the library under test.

    Without `at`, the code of now, first waiting for the next 30-second step when fewer than
    `margin` seconds are left of this one: the portal accepts the current step only, and a sign-in
    while Redis is down spends a second on the cache before the code is checked."""
    if at is None:
        left = 30 - time.time() % 30
        if left < margin:
            time.sleep(left + 0.05)
        at = time.time()
    key = base64.b32decode(secret, casefold=True)
    counter = int(at // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def password_step(client: Client, email: str, password: str = PASSWORD):
    return client.post(reverse("login"), {"login": email, "password": password})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def make_stale(client: Client, seconds: int = 3600) -> None:
    """Travel in time: make every authentication of this session `seconds` old."""
    session = client.session
    old = time.time() - seconds
    session[LOGIN_AT] = old
    session[SEEN_AT] = time.time()
    session[AUTH_RECORDS] = [{**record, "at": old} for record in session.get(AUTH_RECORDS, [])]
    session.save()


def audit_actions(user) -> list[str]:
    return list(AuditEvent.objects.filter(target_id=str(user.pk)).values_list("action", flat=True))


# --- Logging in with a second factor ---------------------------------------------------------------


def test_login_with_totp(client, member):
    secret = enrol_totp(member)
    response = password_step(client, member.email)
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    assert not signed_in(client), "a password alone must not sign in an account with MFA"

    wrong = client.post(
        reverse("mfa_authenticate"), {"code": "000000" if totp_code(secret) != "000000" else "1"}
    )
    assert wrong.status_code == 200 and not signed_in(client)
    assert "portal.account.mfa_failed" in audit_actions(member)

    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302 and signed_in(client)
    assert client.get(reverse("org-home", args=["acme"])).status_code == 200


def test_a_totp_code_cannot_be_replayed(member):
    secret = enrol_totp(member)
    code = totp_code(secret)
    first, second = Client(), Client()
    password_step(first, member.email)
    assert first.post(reverse("mfa_authenticate"), {"code": code}).status_code == 302 and signed_in(first)
    password_step(second, member.email)
    second.post(reverse("mfa_authenticate"), {"code": code})
    assert not signed_in(second)


def test_login_with_a_recovery_code_works_once(member):
    enrol_totp(member)
    codes = RecoveryCodes.activate(member).generate_codes()
    assert len(codes) == 10

    first = Client()
    password_step(first, member.email)
    assert first.post(reverse("mfa_authenticate"), {"code": codes[0]}).status_code == 302
    assert signed_in(first)
    assert "portal.account.recovery_code_used" in audit_actions(member)

    again = Client()
    password_step(again, member.email)
    response = again.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert response.status_code == 200 and not signed_in(again)
    # The other codes still work.
    assert again.post(reverse("mfa_authenticate"), {"code": codes[1]}).status_code == 302
    assert signed_in(again)


def test_session_id_rotates_at_login(client, member):
    client.get(reverse("login"))
    session = client.session
    session["probe"] = "before"
    session.save()
    before = client.cookies["sessionid"].value
    assert password_step(client, member.email).status_code == 302
    after = client.cookies["sessionid"].value
    assert after != before and signed_in(client)
    assert not Session.objects.filter(session_key=before).exists()


# --- Enrolment through the pages, and the leak sweep -------------------------------------------------


@pytest.mark.django_db(transaction=True)  # allauth audits and mails after the real commit
def test_enrol_totp_through_the_pages_keeps_secrets_out_of_logs_audit_and_database(
    member, caplog, mailoutbox
):
    client = Client()
    password_step(client, member.email)
    caplog.set_level("DEBUG")
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'src="data:image/svg+xml;base64,' in html, "the QR code is rendered by the portal itself"
    secret = client.session["mfa.totp.secret"]
    assert secret in html  # shown once, for manual entry

    done = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert done.status_code == 302
    codes_page = client.get(done["Location"]).content.decode()
    codes = RecoveryCodes(Authenticator.objects.get(user=member, type="recovery_codes")).generate_codes()
    assert codes[0] in codes_page
    assert {"portal.account.mfa_enrolled"} <= set(audit_actions(member))

    secrets = [secret, *codes]
    logs = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    audit = " ".join(f"{e.action} {e.extra} {e.target_label}" for e in AuditEvent.objects.all())
    stored = " ".join(str(a.data) for a in Authenticator.objects.all())
    sessions = " ".join(f"{s.session_data} {s.get_decoded()}" for s in Session.objects.all())  # signed base64
    mails = " ".join(f"{m.subject} {m.body}" for m in mailoutbox)
    assert mailoutbox, "the user is told by email that an authenticator was added"
    for value in secrets:
        assert value not in mails
        assert value not in logs
        assert value not in audit
        assert value not in stored, "MFA secrets are encrypted at rest"
        assert value not in sessions


# --- Policy -----------------------------------------------------------------------------------------


def test_staff_without_mfa_cannot_use_the_admin():
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and response["Location"] == reverse("mfa_index")
    assert client.get(reverse("mfa_index")).status_code == 200
    enrol_totp(staff)
    assert client.get(reverse("admin:index")).status_code == 200


def test_the_admin_login_form_is_the_portal_login():
    response = Client().get(reverse("admin:login"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_staff_login_to_the_admin_needs_the_second_factor():
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    secret = enrol_totp(staff)
    client = Client()
    password_step(client, staff.email)
    assert client.get(reverse("admin:index")).status_code == 302
    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert client.get(reverse("admin:index")).status_code == 200


def test_organisation_requiring_mfa_sends_members_to_enrolment(owner_client, member_client, member, owner):
    assert member_client.get(reverse("org-home", args=["acme"])).status_code == 200
    response = owner_client.post(reverse("org-security", args=["acme"]), {"mfa_required": "everyone"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="portal.organization.mfa_requirement_changed")
    assert event.extra == {"from": "none", "to": "everyone"}

    for url in (
        reverse("org-home", args=["acme"]),
        reverse("org-api-keys", args=["acme"]),
        reverse("dashboard"),
    ):
        response = member_client.get(url)
        assert response.status_code == 302 and response["Location"] == reverse("mfa_index"), url
    api = member_client.get(reverse("api-org-api-key-list", args=["acme"]))
    assert api.status_code == 403 and "two-factor" in api.json()["detail"]
    assert member_client.get(reverse("mfa_index")).status_code == 200
    assert member_client.get(reverse("mfa_activate_totp")).status_code == 200

    enrol_totp(member)
    assert member_client.get(reverse("org-home", args=["acme"])).status_code == 200


def test_managers_only_policy_leaves_members_alone(organization, member_client, admin_client_org, admin_user):
    organization.mfa_required = MfaRequirement.MANAGERS
    organization.save()
    assert member_client.get(reverse("org-home", args=["acme"])).status_code == 200
    assert admin_client_org.get(reverse("org-home", args=["acme"]))["Location"] == reverse("mfa_index")


def test_promotion_into_a_requiring_role_takes_effect_at_once(
    organization, member_client, member, owner_client, owner
):
    enrol_totp(owner)  # the owner is a manager too
    organization.mfa_required = MfaRequirement.MANAGERS
    organization.save()
    assert member_client.get(reverse("org-home", args=["acme"])).status_code == 200
    membership = member.memberships.get()
    owner_client.post(reverse("org-member-role", args=["acme", membership.pk]), {"role": Role.ADMIN})
    assert member_client.get(reverse("org-home", args=["acme"]))["Location"] == reverse("mfa_index")


def test_only_owners_change_the_policy(admin_client_org, member_client, organization):
    assert member_client.get(reverse("org-security", args=["acme"])).status_code == 403
    assert admin_client_org.get(reverse("org-security", args=["acme"])).status_code == 200
    assert (
        admin_client_org.post(reverse("org-security", args=["acme"]), {"mfa_required": "none"}).status_code
        == 403
    )
    organization.refresh_from_db()
    assert organization.mfa_required == MfaRequirement.NONE


def test_bad_policy_value_is_a_form_error(owner_client):
    response = owner_client.post(reverse("org-security", args=["acme"]), {"mfa_required": "sometimes"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()


# --- Step-up ----------------------------------------------------------------------------------------


@pytest.fixture
def app(organization, owner):
    return make_m2m_app(organization, owner, name="billing", scopes=())[0]


def _sensitive_actions(organization, owner, member, app):
    key, _ = make_api_key(organization, owner, name="deploy", scopes=())
    membership = member.memberships.get()
    return [
        ("GET", reverse("org-api-key-create", args=["acme"]), {}),
        ("POST", reverse("org-api-key-create", args=["acme"]), {"name": "new", "submission": "x" * 22}),
        ("POST", reverse("org-api-key-rotate", args=["acme", key.key_id]), {"overlap_hours": 1}),
        ("POST", reverse("org-app-create", args=["acme"]), {"name": "svc"}),
        ("POST", reverse("org-app-secret-rotate", args=["acme", app.pk]), {"overlap_hours": 1}),
        ("POST", reverse("org-member-role", args=["acme", membership.pk]), {"role": Role.ADMIN}),
        ("POST", reverse("org-security", args=["acme"]), {"mfa_required": "everyone"}),
    ]


def test_each_sensitive_action_asks_for_step_up_when_stale(organization, owner, member, app):
    client = Client()
    password_step(client, owner.email)
    actions = _sensitive_actions(organization, owner, member, app)
    keys_before, events_before = ApiKey.objects.count(), AuditEvent.objects.count()
    make_stale(client)
    for method, url, data in actions:
        referer = "http://testserver" + reverse("org-members", args=["acme"])
        response = client.generic(
            method,
            url,
            data=data if method == "GET" else _urlencode(data),
            HTTP_REFERER=referer,
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_reauthenticate") + "?next="), url
    assert ApiKey.objects.count() == keys_before
    assert AuditEvent.objects.count() == events_before, "nothing happened while stale"
    assert member.memberships.get().role == Role.MEMBER

    # Re-authenticate with the password, come back, and the action goes through.
    back = reverse("org-members", args=["acme"])
    response = client.post(f"{reverse('account_reauthenticate')}?next={back}", {"password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == back
    method, url, data = actions[-2]
    assert client.post(url, data).status_code == 302
    assert member.memberships.get().role == Role.ADMIN


def _urlencode(data: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(data)


def test_step_up_uses_the_second_factor_when_enrolled(organization, owner):
    secret = enrol_totp(owner)
    client = Client()
    password_step(client, owner.email)
    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    url = reverse("org-api-key-create", args=["acme"])
    assert client.get(url).status_code == 200
    make_stale(client)
    response = client.get(url)
    assert response["Location"] == f"{reverse('mfa_reauthenticate')}?next={url.replace('/', '%2F')}"
    # A wrong code is refused and audited; a fresh code (the next time step) lets the user through.
    client.post(response["Location"], {"code": "12345x"})
    assert "portal.account.step_up_failed" in audit_actions(owner)
    code = totp_code(secret, at=time.time() + 30)
    from django.test import override_settings

    with override_settings(MFA_TOTP_TOLERANCE=1):
        done = client.post(response["Location"], {"code": code})
    assert done.status_code == 302 and done["Location"] == url
    assert client.get(url).status_code == 200


def test_the_password_alone_is_no_step_up_for_an_account_with_a_second_factor(organization, owner):
    """A stolen session's holder may know the password too: with a factor, the factor proves."""
    secret = enrol_totp(owner)
    client = Client()
    password_step(client, owner.email)
    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    make_stale(client)
    page = client.get(reverse("account_reauthenticate"))
    assert page.status_code == 302 and page["Location"].startswith(reverse("mfa_reauthenticate"))
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    client.post(reverse("mfa_deactivate_totp"))
    assert Authenticator.objects.filter(user=owner, type=Authenticator.Type.TOTP).exists()
    assert client.get(reverse("org-api-key-create", args=["acme"])).status_code == 302  # still stale


def test_a_wrong_password_at_step_up_is_audited(owner_client, owner):
    make_stale(owner_client)
    owner_client.post(reverse("account_reauthenticate"), {"password": "not-it"})
    assert "portal.account.step_up_failed" in audit_actions(owner)
    assert all("not-it" not in str(e.extra) for e in AuditEvent.objects.all())


def test_admin_signing_key_rotation_asks_for_step_up():
    from django.core.management import call_command

    from tokens.models import SigningKey

    call_command("rotate_signing_key", stdout=io.StringIO())
    first = SigningKey.objects.get()
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)
    client = Client()
    client.force_login(staff)
    url = reverse("admin:tokens_signingkey_changelist")
    make_stale(client)
    response = client.post(
        url,
        {"action": "rotate_rs256", "_selected_action": [first.pk]},
        HTTP_REFERER="http://testserver" + url,
    )
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_reauthenticate"))
    assert SigningKey.objects.get() == first


# --- Sessions ---------------------------------------------------------------------------------------


def test_sessions_page_lists_sessions_and_signs_out_the_others(member):
    laptop, phone = Client(HTTP_USER_AGENT="Laptop browser"), Client(HTTP_USER_AGENT="Phone browser")
    password_step(laptop, member.email)
    password_step(phone, member.email)
    page = laptop.get(reverse("usersessions_list")).content.decode()
    assert "Laptop browser" in page and "Phone browser" in page and "127.0.0.1" in page

    assert laptop.post(reverse("usersessions_list")).status_code == 302
    response = phone.get(reverse("org-home", args=["acme"]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert laptop.get(reverse("org-home", args=["acme"])).status_code == 200
    event = AuditEvent.objects.get(action="portal.account.sessions_ended")
    assert event.extra == {"count": 1, "via": "sessions-page"}


def test_a_stale_session_confirms_it_is_the_person_before_signing_the_others_out(member):
    # A stolen cookie (its sign-in long ago) must not sign the real person out and keep the account.
    stolen, real = Client(HTTP_USER_AGENT="Thief"), Client(HTTP_USER_AGENT="Real")
    password_step(stolen, member.email)
    password_step(real, member.email)
    make_stale(stolen)

    response = stolen.post(reverse("usersessions_list"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("account_reauthenticate"))
    assert real.get(reverse("org-home", args=["acme"])).status_code == 200
    assert not AuditEvent.objects.filter(action="portal.account.sessions_ended").exists()


def test_staff_end_a_users_sessions_in_the_admin(member):
    browser = Client()
    password_step(browser, member.email)
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)
    admin = Client()
    admin.force_login(staff)
    response = admin.post(
        reverse("admin:portal_user_changelist"), {"action": "end_sessions", "_selected_action": [member.pk]}
    )
    assert response.status_code == 302
    assert not UserSession.objects.filter(user=member).exists()
    assert browser.get(reverse("org-home", args=["acme"]))["Location"].startswith(reverse("login"))
    event = AuditEvent.objects.get(action="portal.account.sessions_ended")
    assert event.actor == staff and event.extra["via"] == "admin"


def test_idle_timeout(member_client, settings):
    session = member_client.session
    # Idle for longer than the timeout plus the minute the recorded last-seen time may lag.
    session[SEEN_AT] = time.time() - settings.PORTAL_SESSION_IDLE_SECONDS - 65
    session.save()
    key = session.session_key
    response = member_client.get(reverse("org-home", args=["acme"]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not Session.objects.filter(session_key=key).exists()


def test_absolute_timeout(member_client, settings):
    session = member_client.session
    session[LOGIN_AT] = time.time() - settings.PORTAL_SESSION_ABSOLUTE_SECONDS - 5
    session[SEEN_AT] = time.time()
    session.save()
    response = member_client.get(reverse("org-home", args=["acme"]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert "_auth_user_id" not in member_client.session


def test_logout_invalidates_the_session_server_side(member):
    client = Client()
    password_step(client, member.email)
    stolen = client.cookies["sessionid"].value
    assert client.post(reverse("logout")).status_code == 302
    assert not Session.objects.filter(session_key=stolen).exists()
    replay = Client()
    replay.cookies["sessionid"] = stolen
    assert replay.get(reverse("org-home", args=["acme"]))["Location"].startswith(reverse("login"))


def test_demo_users_start_without_mfa(settings):
    from django.core.management import call_command

    settings.DEBUG = True
    call_command("seed_demo")
    assert not Authenticator.objects.exists()
    client = Client()
    response = client.post(reverse("login"), {"login": "admin@portal.example", "password": "demo-password"})
    assert response.status_code == 302 and signed_in(client)
    # The staff demo user is asked to enrol before using the admin.
    assert client.get(reverse("admin:index"))["Location"] == reverse("mfa_index")


def test_other_organisation_members_are_not_affected(outsider, organization):
    organization.mfa_required = MfaRequirement.EVERYONE
    organization.save()
    client = Client()
    client.force_login(outsider)
    assert client.get(reverse("org-home", args=["globex"])).status_code == 200


def test_a_member_of_two_organisations_follows_the_strictest(organization, other_organization, member):
    MembershipFactory(user=member, organization=other_organization, role=Role.MEMBER)
    other_organization.mfa_required = MfaRequirement.EVERYONE
    other_organization.save()
    client = Client()
    client.force_login(member)
    assert client.get(reverse("org-home", args=["acme"]))["Location"] == reverse("mfa_index")


def test_the_authenticator_secret_page_is_not_stored(owner_client):
    """It shows the TOTP seed (and its QR code): no cache, the back button's included, keeps it."""
    response = owner_client.get(reverse("mfa_activate_totp"))
    assert response.status_code == 200
    assert 'id="authenticator-secret"' in response.content.decode()
    assert "no-store" in response["Cache-Control"]


def test_recovery_codes_are_shown_once(member, owner_client):
    client = Client()
    client.force_login(member)
    enrol_totp(member)
    codes = RecoveryCodes.activate(member)
    first = client.get(reverse("mfa_view_recovery_codes")).content.decode()
    assert codes.generate_codes()[0] in first
    again = client.get(reverse("mfa_view_recovery_codes")).content.decode()
    assert codes.generate_codes()[0] not in again


def test_step_up_offers_the_passkey_when_there_is_no_authenticator_app(owner_client, owner):
    Authenticator.objects.create(user=owner, type=Authenticator.Type.WEBAUTHN, data={"name": "Laptop"})
    RecoveryCodes.activate(owner)
    make_stale(owner_client)
    response = owner_client.get(reverse("org-api-key-create", args=["acme"]))
    assert response["Location"].startswith(reverse("mfa_reauthenticate_webauthn") + "?next=")


def test_the_rest_api_asks_session_users_for_step_up_but_not_machines(owner_client, organization, owner):
    create_url = reverse("api-org-api-key-list", args=["acme"])
    make_stale(owner_client)
    response = owner_client.post(create_url, {"name": "x"}, content_type="application/json")
    assert response.status_code == 403 and "Confirm it is you" in response.json()["detail"]
    key, _ = make_api_key(organization, owner, name="deploy", scopes=())
    rotate = owner_client.post(f"{create_url}{key.key_id}/rotate/", {}, content_type="application/json")
    assert rotate.status_code == 403
    assert ApiKey.objects.count() == 1

    ScopeFactory(name="api_keys:manage")
    _manager, plaintext = make_api_key(organization, owner, name="automation", scopes=["api_keys:manage"])
    machine = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert (
        machine.post(create_url, {"name": "by-machine"}, content_type="application/json").status_code == 201
    )


def test_signup_is_closed(client):
    page = client.get(reverse("account_signup"))
    assert page.status_code == 200 and "closed" in page.content.decode().lower()
    client.post(
        reverse("account_signup"), {"email": "new@example.test", "password1": "x" * 12, "password2": "x" * 12}
    )
    from portal.models import User

    assert not User.objects.filter(email="new@example.test").exists()


def test_nobody_changes_their_own_sign_in_address(member):
    """A stolen session could make an attacker's address primary, then reset the password to it:
    allauth's e-mail page is off, and the address stays the one the invitation proved."""
    client = Client()
    password_step(client, member.email)
    assert signed_in(client)
    assert client.get(reverse("account_email")).status_code == 404
    add = client.post(reverse("account_email"), {"action_add": "", "email": "attacker@evil.test"})
    primary = client.post(reverse("account_email"), {"action_primary": "", "email": "attacker@evil.test"})
    assert (add.status_code, primary.status_code) == (404, 404)
    member.refresh_from_db()
    assert member.email == "dev@acme.test"
    assert not member.emailaddress_set.filter(email="attacker@evil.test").exists()


def test_password_change_and_reset_pages_work(member, mailoutbox):
    client = Client()
    password_step(client, member.email)
    assert client.get(reverse("account_change_password")).status_code == 200
    response = client.post(
        reverse("account_change_password"),
        {
            "oldpassword": PASSWORD,
            "password1": "a-new-long-passphrase-42",
            "password2": "a-new-long-passphrase-42",
        },
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.check_password("a-new-long-passphrase-42")

    anonymous = Client()
    assert anonymous.get(reverse("account_reset_password")).status_code == 200
    anonymous.post(reverse("account_reset_password"), {"email": member.email})
    assert any("password" in m.subject.lower() for m in mailoutbox)


def test_insecure_webauthn_origin_is_flagged_outside_debug(settings):
    from portal.checks import check_webauthn_origin_is_secure

    settings.DEBUG = False
    settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = True
    assert [w.id for w in check_webauthn_origin_is_secure(None)] == ["portal.W010"]
    settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = False
    assert check_webauthn_origin_is_secure(None) == []


def test_the_set_up_the_organisation_demands_leads_back_to_the_page_asked_for(owner, member, organization):
    """After the second-factor set-up the organisation requires, the recovery codes' page (the last
    step) links back to the page the person was sent from; there was no way back but the logo."""
    organization.mfa_required = MfaRequirement.EVERYONE
    organization.save()
    client = Client()
    password_step(client, member.email)
    asked = reverse("org-api-keys", args=["acme"])
    assert client.get(asked)["Location"] == reverse("mfa_index")
    client.get(reverse("mfa_activate_totp"))
    done = client.post(reverse("mfa_activate_totp"), {"code": totp_code(client.session["mfa.totp.secret"])})
    codes_page = client.get(done["Location"]).content.decode()
    assert f'<a class="btn" href="{asked}">Continue</a>' in codes_page
    assert client.get(asked).status_code == 200

    session = client.session
    session["portal.enrolment_next"] = "//evil.example/phish"  # never another host
    session.save()
    assert (
        f'href="{reverse("dashboard")}">Continue</a>'
        in client.get(reverse("mfa_view_recovery_codes")).content.decode()
    )
