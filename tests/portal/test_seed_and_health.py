"""seed_demo idempotence, the health probe and the login guard."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from portal.models import AuditEvent, Membership, Organization, Role, User
from tests.factories import enrol_totp


@pytest.mark.django_db
def test_seed_demo_is_idempotent(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    counts = (User.objects.count(), Membership.objects.count(), AuditEvent.objects.count())
    call_command("seed_demo")
    assert (User.objects.count(), Membership.objects.count(), AuditEvent.objects.count()) == counts
    acme = Organization.objects.get(slug="acme")
    assert acme.name == "Acme Inc"
    assert Membership.objects.get(organization=acme, user__email="owner@acme.example").role == Role.OWNER
    assert Membership.objects.get(organization=acme, user__email="dev@acme.example").role == Role.MEMBER
    admin = User.objects.get(email="admin@portal.example")
    assert admin.is_staff and admin.is_superuser
    for email in ("owner@acme.example", "dev@acme.example", "admin@portal.example"):
        assert User.objects.get(email=email).check_password("demo-password")


@pytest.mark.django_db
def test_seed_demo_refuses_with_debug_off_in_process(settings):
    from django.core.management.base import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo")
    call_command("seed_demo", "--force")
    assert Organization.objects.filter(slug="acme").exists()


@pytest.mark.django_db
def test_demo_owner_logs_in_and_sees_acme(client, settings):
    settings.DEBUG = True
    call_command("seed_demo")
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b"Sign in" in page.content
    response = client.post(
        reverse("login"), {"login": "owner@acme.example", "password": "demo-password"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("org-home", args=["acme"])
    assert "Acme Inc" in response.content.decode()


@pytest.mark.django_db
def test_healthz_answers_when_the_database_does(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


@pytest.mark.django_db
def test_healthz_answers_head_as_get_without_a_body(client):
    # Load balancers probe with HEAD as often as with GET.
    response = client.head("/healthz")
    assert response.status_code == 200 and response.content == b""


@pytest.mark.django_db
def test_healthz_answers_503_when_the_database_does_not(client, monkeypatch):
    def broken(*args, **kwargs):
        raise connection.Database.OperationalError("database is down")

    monkeypatch.setattr(connection, "cursor", broken)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"] == "down"


@pytest.mark.django_db
class TestLoginThrottle:
    def test_account_is_paused_after_repeated_failures(self, client, settings, member):
        settings.ACCOUNT_RATE_LIMITS = {"login_failed": "20/900s/ip,3/900s/key"}
        for _ in range(3):
            response = client.post(reverse("login"), {"login": member.email, "password": "wrong"})
            assert "do not match an account" in response.content.decode()
        response = client.post(
            reverse("login"), {"login": member.email, "password": "correct-horse-battery-staple"}
        )
        assert response.status_code == 429 and response["Retry-After"] == "900"
        assert "Too many failed sign-in attempts" in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_ip_is_paused_across_accounts(self, client, settings, member, owner):
        settings.ACCOUNT_RATE_LIMITS = {"login_failed": "4/900s/ip,5/900s/key"}
        for i in range(4):
            client.post(reverse("login"), {"login": f"nobody{i}@example.test", "password": "wrong"})
        response = client.post(
            reverse("login"), {"login": owner.email, "password": "correct-horse-battery-staple"}
        )
        assert "Too many failed sign-in attempts" in response.content.decode()

    def test_forwarded_for_is_ignored_from_untrusted_peers(self, client, settings, member):
        settings.ACCOUNT_RATE_LIMITS = {"login_failed": "2/900s/ip,100/900s/key"}
        for i in range(2):
            client.post(
                reverse("login"),
                {"login": f"x{i}@example.test", "password": "wrong"},
                HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
            )
        response = client.post(
            reverse("login"), {"login": member.email, "password": "correct-horse-battery-staple"}
        )
        assert "Too many failed sign-in attempts" in response.content.decode()

    def test_successful_sign_ins_do_not_count(self, client, settings, member):
        # allauth counts every attempt and gives a successful one back; earlier failures stay
        # counted until the window ends (it never wipes them, so a guesser cannot interleave
        # sign-ins to an account of their own to reset the count).
        settings.ACCOUNT_RATE_LIMITS = {"login_failed": "20/900s/ip,3/900s/key"}
        for _ in range(2):
            client.post(reverse("login"), {"login": member.email, "password": "wrong"})
        for _ in range(3):
            response = client.post(
                reverse("login"), {"login": member.email, "password": "correct-horse-battery-staple"}
            )
            assert response.status_code == 302
            client.logout()
        client.post(reverse("login"), {"login": member.email, "password": "wrong"})
        response = client.post(
            reverse("login"), {"login": member.email, "password": "correct-horse-battery-staple"}
        )
        assert response.status_code == 429


@pytest.mark.django_db
def test_audit_events_are_read_only_in_the_admin(client, organization, owner):
    admin = User.objects.create_superuser(email="staff@portal.test", password="x-long-password-1")
    enrol_totp(admin)  # staff use the admin only with a second factor
    AuditEvent.objects.create(action="portal.test.event", organization=organization, actor=owner)
    client.force_login(admin)
    event = AuditEvent.objects.get()
    assert client.get(reverse("admin:portal_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:portal_auditevent_add")).status_code == 403
    assert client.get(reverse("admin:portal_auditevent_delete", args=[event.pk])).status_code == 403
    response = client.post(reverse("admin:portal_auditevent_change", args=[event.pk]), {"action": "tampered"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.action == "portal.test.event"


@pytest.mark.django_db
def test_audit_page_filters_and_paginates(owner_client, organization, owner, member):
    for i in range(60):
        AuditEvent.objects.create(action=f"portal.bulk.e{i % 2}", organization=organization, actor=owner)
    AuditEvent.objects.create(action="portal.other", organization=organization, actor=member)
    url = reverse("org-audit", args=[organization.slug])
    body = owner_client.get(url).content.decode()
    assert "Page 1 of 2" in body
    body = owner_client.get(url, {"actor": member.pk}).content.decode()
    assert "portal.other" in body and "portal.bulk" not in body
    body = owner_client.get(url, {"action": "portal.bulk.e1"}).content.decode()
    assert "portal.bulk.e1" in body and "portal.bulk.e0" not in body
