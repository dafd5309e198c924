"""A notice the mail server did not take goes out with the next `send_credential_notices` run.

What was wrong:
- a notice sent by a service (approval requested, leaked secret, policy flag) that the mail server
  refused was dropped for good: its row was deleted, and only the scheduled notices came back,
  because their condition still held at the next run;
- a run killed between recording a notice and mailing it (the mail goes out after the commit)
  left it recorded as sent, and a mail server that accepted the connection and never answered
  hung the run until it was killed (Django's SMTP backend has no timeout unless one is set);
- a refused expiry notice, recorded again by the next run, queued the `credential.expiring`
  webhook a second time under a new event id;
- a credential revoked while a long run worked through its list was still told it was expiring.

The row now keeps the message until the mail server takes it (`sent_at`), and every run first
sends what is left (`notices_retry`). `EMAIL_TIMEOUT` (10 s) bounds the wait on the server.
"""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke
from credentials.governance import notices
from credentials.governance.models import Notice
from credentials.webhooks.models import WebhookDelivery
from credentials.webhooks.services import webhook_endpoint_create
from tests.factories import make_api_key
from tests.support.threads import pause_in, run_together
from tokens.models import ClientSecret

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def outage(monkeypatch):
    """The mail server refuses every message until `outage.end()`."""
    real = notices.send_mail

    def refuse(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(notices, "send_mail", refuse)

    class Outage:
        @staticmethod
        def end() -> None:
            monkeypatch.setattr(notices, "send_mail", real)

    return Outage


def minutes_pass(minutes: int = 10) -> None:
    """The next cron run: every notice was recorded `minutes` ago."""
    Notice.objects.update(created_at=timezone.now() - timedelta(minutes=minutes))


def expiring_receiver(organization, owner, settings) -> None:
    """Subscribe an endpoint (never reached: the tests count the queued deliveries) to `expiring`."""
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True
    webhook_endpoint_create(
        organization=organization,
        url="http://127.0.0.1:9/hooks",
        event_types=["expiring"],
        actor=owner,
        description="receiver",
    )


def run(capture) -> None:
    with capture(execute=True):
        call_command("send_credential_notices")


def test_an_approval_request_the_mail_server_refused_goes_out_with_the_next_run(
    kit,
    require_approval,
    member,
    member_client,
    owner,
    admin_user,
    outage,
    django_capture_on_commit_callbacks,
):
    require_approval()
    with django_capture_on_commit_callbacks(execute=True):
        member_client.post(kit.create_url, kit.create_form(owner=member))
    assert mail.outbox == []
    (notice,) = Notice.objects.all()
    assert notice.notice_type == "approval_requested" and notice.sent_at is None

    outage.end()
    run(django_capture_on_commit_callbacks)
    assert mail.outbox == [], "a notice recorded a moment ago is left to the process that recorded it"
    minutes_pass()
    run(django_capture_on_commit_callbacks)
    run(django_capture_on_commit_callbacks)
    (sent,) = mail.outbox
    assert set(sent.to) == {owner.email, admin_user.email}
    assert "/orgs/acme/approvals/" in sent.body
    notice.refresh_from_db()
    assert notice.sent_at is not None


def test_a_notice_recorded_by_a_run_killed_before_it_mailed_it_goes_out_with_the_next_run(
    kit, member, django_capture_on_commit_callbacks
):
    credential, _ = kit.create(owner=member, name="review soon")
    kit.model.objects.filter(pk=credential.pk).update(review_due_at=timezone.now() + timedelta(days=5))
    with django_capture_on_commit_callbacks(execute=False):  # the process dies after the commit
        call_command("send_credential_notices")
    assert mail.outbox == [] and Notice.objects.get().sent_at is None

    minutes_pass()
    run(django_capture_on_commit_callbacks)
    run(django_capture_on_commit_callbacks)
    assert [m.subject for m in mail.outbox if "review soon" in m.subject] != []
    assert len(mail.outbox) == 1


def test_an_expiry_notice_sent_again_queues_its_webhook_once(
    kit, organization, owner, member, outage, settings, django_capture_on_commit_callbacks
):
    expiring_receiver(organization, owner, settings)
    credential, _ = kit.create(owner=member, name="expires soon")
    when = timezone.now() + timedelta(days=2)
    if kit.key == "api_key":
        kit.model.objects.filter(pk=credential.pk).update(expires_at=when)
    else:
        ClientSecret.objects.filter(application=credential).update(expires_at=when)

    run(django_capture_on_commit_callbacks)
    outage.end()
    minutes_pass()
    run(django_capture_on_commit_callbacks)
    assert [m.subject for m in mail.outbox if "expires soon" in m.subject] != []
    assert WebhookDelivery.objects.filter(event_type="credential.expiring").count() == 1


def test_a_notice_older_than_the_retry_window_is_left_unsent(
    kit, member, outage, django_capture_on_commit_callbacks
):
    credential, _ = kit.create(owner=member, name="review soon")
    kit.model.objects.filter(pk=credential.pk).update(review_due_at=timezone.now() + timedelta(days=5))
    run(django_capture_on_commit_callbacks)
    outage.end()
    minutes_pass(int((notices.NOTICE_RETRY_FOR + timedelta(minutes=1)).total_seconds() // 60))
    run(django_capture_on_commit_callbacks)
    assert mail.outbox == []
    assert Notice.objects.get().sent_at is None  # in the admin's Notices list, not sent


@pytest.mark.django_db(transaction=True)
def test_a_key_revoked_while_the_run_works_through_its_list_is_not_told_it_is_expiring(
    organization, owner, member, scopes, settings, monkeypatch
):
    expiring_receiver(organization, owner, settings)
    first, _ = make_api_key(organization, member, name="alpha expiring")
    second, _ = make_api_key(organization, member, name="beta expiring")
    ApiKey.objects.filter(pk__in=[first.pk, second.pk]).update(expires_at=timezone.now() + timedelta(days=2))

    real = notices.send_mail
    revoked = []

    def send_then_the_member_acts(subject, *args, **kwargs):
        result = real(subject, *args, **kwargs)
        if not revoked:  # while the first e-mail goes out, the member revokes the other key
            other = second if "alpha" in subject else first
            api_key_revoke(api_key=other, actor=member, reason="not needed any more")
            revoked.append(other)
        return result

    monkeypatch.setattr(notices, "send_mail", send_then_the_member_acts)
    call_command("send_credential_notices")

    (gone,) = revoked
    assert ApiKey.objects.get(pk=gone.pk).status == "revoked"
    assert [m.subject for m in mail.outbox if gone.name in m.subject] == []
    assert len(mail.outbox) == 1
    hooks = [
        d.payload["data"]["credential"]["name"]
        for d in WebhookDelivery.objects.filter(event_type="credential.expiring")
    ]
    assert gone.name not in hooks and len(hooks) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_retry_and_the_send_after_commit_at_once_mail_the_notice_once(
    require_postgres, organization, member, scopes, monkeypatch
):
    key, _ = make_api_key(organization, member, name="review soon")
    with monkeypatch.context() as recorded_only:  # its after-commit send is started below, by hand
        recorded_only.setattr(notices.transaction, "on_commit", lambda fn: None)
        notices.notice_send_once(
            credential=key, notice_type="review_due", period="p1", recipients=[member.email]
        )
    notice = Notice.objects.get()
    reached = pause_in(monkeypatch, notices, "send_mail", thread="after-commit")

    def retry():
        reached.wait(timeout=10)  # the first holds the row and talks to the mail server
        return notices.notices_retry(now=timezone.now() + timedelta(minutes=10))

    results = run_together(("after-commit", lambda: notices.notice_deliver(notice.pk)), ("retry", retry))
    assert results == {"after-commit": True, "retry": 0}, results
    assert len(mail.outbox) == 1
    notice.refresh_from_db()
    assert notice.sent_at is not None


class SilentMailServer:
    """Accepts TCP connections on a loopback port and never says a word (no SMTP greeting)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_facing_a_silent_mail_server_ends_and_the_next_run_sends_the_notice(
    require_postgres, organization, member, scopes
):
    key, _ = make_api_key(organization, member, name="review soon")
    ApiKey.objects.filter(pk=key.pk).update(review_due_at=timezone.now() + timedelta(days=5))
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    server = SilentMailServer()
    env.update(
        DEBUG="1",
        DATABASE_URL=f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        EMAIL_URL=f"smtp://127.0.0.1:{server.port}",
        EMAIL_TIMEOUT="1",
    )
    try:
        done = subprocess.run(
            [sys.executable, "manage.py", "send_credential_notices"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,  # without a timeout the run waits on the server for good
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert "Could not send the review_due notice" in done.stderr
    assert Notice.objects.get().sent_at is None

    minutes_pass()
    call_command("send_credential_notices")  # the mail server answers again (the test's outbox)
    assert [m.subject for m in mail.outbox if "review soon" in m.subject] != []
