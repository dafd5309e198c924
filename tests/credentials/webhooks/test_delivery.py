"""The sender: signed POSTs, retries with growing back-off, giving up, SSRF refusals, concurrent runners."""

from __future__ import annotations

import io
import socket
import threading
import time
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.utils import timezone

from credentials.api_keys.services import api_key_create
from credentials.webhooks import delivery
from credentials.webhooks.delivery import deliveries_drain
from credentials.webhooks.models import DeliveryState, WebhookDelivery
from credentials.webhooks.services import (
    webhook_delivery_retry,
    webhook_endpoint_ping,
    webhook_endpoint_rotate_secret,
)
from credentials.webhooks.signing import SIGNATURE_HEADER, SignatureError, verify_signature
from tests.credentials.webhooks.conftest import deliver
from tests.support.servers import dripping_peer

pytestmark = pytest.mark.django_db


def _make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def _ping(make_endpoint, owner):
    endpoint, secret = make_endpoint()
    return endpoint, secret, webhook_endpoint_ping(endpoint=endpoint, actor=owner)


def test_a_test_event_is_delivered_and_recorded(owner, receiver, make_endpoint):
    endpoint, secret, delivery = _ping(make_endpoint, owner)
    deliver()
    (payload,) = receiver.verified(secret)
    assert payload["type"] == "webhook.ping"
    assert payload["data"] == {"endpoint": receiver.url, "actor": "owner@acme.test"}
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert delivery.response_excerpt == "received 200"
    assert receiver.received[0].headers["Portal-Webhook-Event"] == "webhook.ping"
    assert receiver.received[0].headers["User-Agent"].startswith("IdentityPortal-Webhooks/")
    deliver()
    assert len(receiver.received) == 1  # delivered rows are not sent again


def test_failures_back_off_then_give_up_and_a_retry_succeeds(owner, receiver, make_endpoint):
    endpoint, secret, delivery = _ping(make_endpoint, owner)
    receiver.statuses.extend([500, 503, 500, 502])
    delays = []
    for attempt in (1, 2, 3):
        before = timezone.now()
        assert "will retry 1" in deliver()
        delivery.refresh_from_db()
        assert delivery.state == DeliveryState.FAILED
        assert delivery.attempts == attempt
        assert delivery.last_error.startswith("HTTP 5")
        delays.append((delivery.next_attempt_at - before).total_seconds())
        deliver()  # not due yet: nothing is sent
        assert len(receiver.received) == attempt
        _make_due(delivery)
    # 30 s · 2^(n-1) with ±20 % jitter: each wait is longer than the one before.
    assert 24 <= delays[0] <= 36.5 and 48 <= delays[1] <= 72.5 and 96 <= delays[2] <= 144.5
    assert "gave up on 1" in deliver()  # the 4th attempt is the last (PORTAL_WEBHOOK_MAX_ATTEMPTS)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("dead", 4, 502)
    assert delivery.next_attempt_at is None
    _make_due(delivery)
    deliver()
    assert len(receiver.received) == 4  # dead rows stay dead

    webhook_delivery_retry(delivery=delivery, actor=owner)
    assert "Delivered 1" in deliver()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("succeeded", 5, 200)
    # The same event id on every attempt, so the receiver can deduplicate.
    assert {r.headers["Portal-Webhook-Id"] for r in receiver.received} == {str(delivery.event_id)}
    assert len(receiver.verified(secret)) == 5


def test_a_timeout_is_a_failure(owner, receiver, make_endpoint):
    receiver.delay = 2.5  # PORTAL_WEBHOOK_TIMEOUT_SECONDS is 1 in these tests
    _endpoint, _secret, delivery = _ping(make_endpoint, owner)
    deliver()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code, delivery.last_error) == ("failed", None, "Timed out")


def test_a_refused_connection_is_a_failure(owner, make_endpoint):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the sender connects
    _endpoint, _secret, delivery = _ping(lambda: make_endpoint(url=f"http://127.0.0.1:{port}/hook"), owner)
    deliver()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_error) == ("failed", "Connection refused")


def test_redirects_are_not_followed(owner, receiver, make_endpoint):
    receiver.statuses.append(302)
    receiver.redirect_to = receiver.url.replace("/hooks/portal", "/elsewhere")
    _endpoint, _secret, delivery = _ping(make_endpoint, owner)
    deliver()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == ("failed", 302)
    assert [r.path for r in receiver.received] == ["/hooks/portal"]


def test_a_disabled_endpoint_keeps_its_queue_until_enabled(owner, receiver, make_endpoint):
    endpoint, _secret, delivery = _ping(make_endpoint, owner)
    endpoint.active = False
    endpoint.save()
    deliver()
    assert receiver.received == []
    endpoint.active = True
    endpoint.save()
    deliver()
    assert len(receiver.received) == 1


def test_during_a_secret_rotation_both_secrets_sign(owner, receiver, make_endpoint):
    endpoint, old_secret = make_endpoint()
    endpoint, new_secret = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=owner, overlap_hours=24)
    webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    deliver()
    (request,) = receiver.received
    assert len(request.headers[SIGNATURE_HEADER].split()) == 2
    verify_signature(body=request.body, headers=request.headers, secret=new_secret)
    verify_signature(body=request.body, headers=request.headers, secret=old_secret)

    endpoint, newest = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=owner, overlap_hours=0)
    webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    deliver()
    request = receiver.received[-1]
    assert len(request.headers[SIGNATURE_HEADER].split()) == 1
    verify_signature(body=request.body, headers=request.headers, secret=newest)
    for stale in (old_secret, new_secret):
        with pytest.raises(SignatureError):
            verify_signature(body=request.body, headers=request.headers, secret=stale)


def test_the_overlap_ends(owner, receiver, make_endpoint):
    endpoint, old_secret = make_endpoint()
    endpoint, new_secret = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=owner, overlap_hours=1)
    endpoint.previous_secret_expires_at = timezone.now() - timedelta(seconds=1)
    endpoint.save()
    webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    deliver()
    request = receiver.received[-1]
    verify_signature(body=request.body, headers=request.headers, secret=new_secret)
    with pytest.raises(SignatureError):
        verify_signature(body=request.body, headers=request.headers, secret=old_secret)


def test_a_host_resolving_to_a_private_address_is_refused_at_delivery(
    settings, owner, receiver, make_endpoint
):
    endpoint, _secret, delivery = _ping(make_endpoint, owner)
    # In production mode, a name that resolves to loopback (or DNS that changed since the URL
    # was saved) is refused before any connection is made.
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = False
    port = receiver.server.server_address[1]
    type(endpoint).objects.filter(pk=endpoint.pk).update(url=f"https://localhost:{port}/hooks/portal")
    deliver()
    delivery.refresh_from_db()
    assert delivery.state == "failed"
    assert delivery.last_error == "Refused destination: The host resolves to a non-public address."
    assert receiver.received == []


def test_http_is_refused_at_delivery_outside_development(settings, owner, receiver, make_endpoint):
    _endpoint, _secret, delivery = _ping(make_endpoint, owner)
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = False
    deliver()
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("Refused destination: Webhooks are sent over HTTPS only")
    assert receiver.received == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_deliver_each_event_once(
    require_postgres, organization, owner, scopes, receiver, make_endpoint
):
    endpoint, secret = make_endpoint(["created"])
    second, second_secret = make_endpoint(["created"])
    for i in range(15):
        api_key_create(organization=organization, name=f"k{i}", owner=owner, scopes=[], actor=owner)
    assert WebhookDelivery.objects.count() == 30
    receiver.delay = 0.02
    barrier = threading.Barrier(3)
    errors = []

    def run():
        try:
            barrier.wait()
            deliveries_drain(batch_size=4)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    sent = []
    for r in receiver.received:
        try:
            sent.append((verify_signature(body=r.body, headers=r.headers, secret=secret), endpoint.pk))
        except SignatureError:
            sent.append((verify_signature(body=r.body, headers=r.headers, secret=second_secret), second.pk))
    assert len(sent) == 30
    assert len(set(sent)) == 30  # each (event, endpoint) delivered once
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"succeeded"}
    assert WebhookDelivery.objects.filter(attempts=1).count() == 30


def test_changing_the_encryption_key_then_reencrypting(settings, owner, receiver, make_endpoint):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    endpoint, secret = make_endpoint()
    old_key = settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY
    settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    # Without the old key listed, the secret cannot be read: the delivery fails, the sender goes on.
    settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = []
    delivery = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    assert "will retry 1" in deliver()
    delivery.refresh_from_db()
    assert delivery.last_error == "The signing secret cannot be decrypted; rotate it."
    assert receiver.received == []
    # With the old key listed, re-encrypt; afterwards the old key is no longer needed.
    settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = [old_key]
    call_command("reencrypt_webhook_secrets")
    settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = []
    _make_due(delivery)
    deliver()
    (payload,) = receiver.verified(secret)
    assert payload["type"] == "webhook.ping"


def test_a_stopping_sender_leaves_the_rest_for_later(owner, receiver, make_endpoint):
    # Three endpoints, so the three rows are claimed together (a claim takes one row per endpoint).
    for n in range(3):
        endpoint, _secret = make_endpoint(url=f"{receiver.url}/{n}")
        webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    calls = []
    counts = deliveries_drain(batch_size=3, stop=lambda: calls.append(1) or len(calls) > 2)
    assert counts["succeeded"] == 1 and len(receiver.received) == 1
    # The two claimed but unsent rows are leased, then due again.
    assert WebhookDelivery.objects.filter(state="pending", attempts=0).count() == 2
    WebhookDelivery.objects.filter(state="pending").update(next_attempt_at=timezone.now())
    deliver()
    assert len(receiver.received) == 3


def test_the_command_refuses_bad_options():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError):
        call_command("deliver_webhooks", "--batch-size", "0")
    with pytest.raises(CommandError):
        call_command("deliver_webhooks", "--once", "--loop")


def test_a_receiver_dripping_bytes_is_cut_off(owner, make_endpoint):
    # Each byte arrives within the per-read timeout (1 s), but the whole answer would take 20 s.
    with dripping_peer(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 40, read_request=True) as port:
        _endpoint, _secret, delivery = _ping(
            lambda: make_endpoint(url=f"http://127.0.0.1:{port}/hook"), owner
        )
        started = time.monotonic()
        deliver()
        assert time.monotonic() - started < 6  # 3 × PORTAL_WEBHOOK_TIMEOUT_SECONDS, plus slack
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_error) == ("failed", "Timed out")


def test_an_unexpected_error_is_counted_and_the_others_go_out(owner, receiver, make_endpoint):
    broken, _ = make_endpoint()
    healthy, secret = make_endpoint()
    bad = webhook_endpoint_ping(endpoint=broken, actor=owner)
    webhook_endpoint_ping(endpoint=healthy, actor=owner)
    # A row the sender cannot turn into a request (a header value http.client refuses), written
    # around the service: it stands for any bug in one row.
    WebhookDelivery.objects.filter(pk=bad.pk).update(event_type="webhook.ping\r\nX-Injected: 1")
    deliver()
    bad.refresh_from_db()
    assert (bad.state, bad.attempts, bad.last_error) == ("failed", 1, "Internal error")
    assert len(receiver.verified(secret)) == 1


def test_a_sender_starts_no_request_its_lease_could_not_cover(owner, receiver, make_endpoint, monkeypatch):
    # One attempt may take 4 s at worst (timeout 1 s: DNS, then the 3 s watchdog); with a 5 s
    # lease and receivers taking 0.8 s, a third request could outlive the lease, when another
    # sender may claim the row: it is left for after the lease instead.
    from credentials.webhooks import delivery as sender

    monkeypatch.setattr(sender, "_lease_seconds", lambda batch_size: 5)
    for n in range(3):  # one batch: a claim takes one row per endpoint
        endpoint, _secret = make_endpoint(url=f"{receiver.url}/{n}")
        webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    receiver.delay = 0.8
    counts = deliveries_drain(batch_size=3)
    assert counts["succeeded"] == 2 and len(receiver.received) == 2
    (left,) = WebhookDelivery.objects.filter(state="pending")
    assert left.attempts == 0 and left.next_attempt_at > timezone.now()


def test_a_late_failure_does_not_undo_a_delivery(owner, receiver, make_endpoint):
    from credentials.webhooks.delivery import Outcome, delivery_record

    _endpoint, _secret, delivery = _ping(make_endpoint, owner)
    deliver()
    # The same row, sent again by a sender whose lease ended, fails afterwards.
    delivery_record(delivery=delivery, outcome=Outcome(500, "HTTP 500"))
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)


def test_a_hostile_response_body_is_stored_harmlessly(owner, receiver, make_endpoint):
    # NUL cannot be stored in PostgreSQL text; control codes would reach a staff terminal.
    receiver.statuses.append(500)
    receiver.body = b"\x00\x1b[2Jbad\xff\nnews" + b"z" * 500
    _endpoint, _secret, delivery = _ping(make_endpoint, owner)
    deliver()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("failed", 1, 500)
    assert delivery.response_excerpt.startswith("\ufffd\ufffd[2Jbad\ufffd\nnews")
    assert len(delivery.response_excerpt) == 300 and "\x00" not in delivery.response_excerpt


def test_a_deleted_endpoint_mid_send_is_not_an_error(owner, receiver, make_endpoint):
    from credentials.webhooks.delivery import Outcome, delivery_record

    endpoint, _secret, delivery = _ping(make_endpoint, owner)
    endpoint.delete()
    assert delivery_record(delivery=delivery, outcome=Outcome(200)).pk == delivery.pk
    assert not WebhookDelivery.objects.exists()


def test_purging_old_deliveries_keeps_the_outbox(owner, receiver, make_endpoint):
    from django.core.management import CommandError, call_command

    from portal.models import AuditEvent

    endpoint, _secret = make_endpoint()
    rows = {}
    for state in ("succeeded", "dead", "failed", "pending"):
        rows[state] = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
        WebhookDelivery.objects.filter(pk=rows[state].pk).update(
            state=state,
            created_at=timezone.now() - timedelta(days=91),
            next_attempt_at=timezone.now() + timedelta(hours=1) if state in ("failed", "pending") else None,
        )
    recent = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    WebhookDelivery.objects.filter(pk=recent.pk).update(state="succeeded", next_attempt_at=None)
    out = io.StringIO()
    call_command("deliver_webhooks", "--purge-older-than", "90", stdout=out)
    assert out.getvalue().strip() == "Deleted 2 webhook deliveries older than 90 days."
    left = set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert left == {rows["failed"].pk, rows["pending"].pk, recent.pk}
    assert receiver.received == []  # purging sends nothing
    assert AuditEvent.objects.get(action="credentials.webhook.deliveries_purged").extra["count"] == 2
    for bad in ("0", "-3", "36501"):
        with pytest.raises(CommandError):
            call_command("deliver_webhooks", "--purge-older-than", bad)
    with pytest.raises(CommandError):
        call_command("deliver_webhooks", "--purge-older-than", "30", "--loop")


def test_test_events_cannot_pile_up(owner, receiver, make_endpoint):
    from django.core.exceptions import ValidationError

    from credentials.webhooks.services import MAX_QUEUED_PINGS

    endpoint, _secret = make_endpoint()
    for _ in range(MAX_QUEUED_PINGS):
        webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    with pytest.raises(ValidationError, match="already waiting"):
        webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    deliver()
    assert len(receiver.received) == MAX_QUEUED_PINGS
    webhook_endpoint_ping(endpoint=endpoint, actor=owner)  # sent ones no longer count


def test_several_unanswering_addresses_stay_within_the_bound(owner, make_endpoint, monkeypatch):
    # A name resolving to many addresses that never answer (blackholed): trying them one after
    # another must still end within the exchange's bound (3 × the 1 s timeout).
    from credentials.webhooks import delivery as sender

    monkeypatch.setattr(sender, "resolve", lambda destination: [f"10.255.255.{i}" for i in range(1, 9)])
    tried = []
    real = socket.create_connection

    def blackhole(address, timeout=None, *args, **kwargs):
        if not address[0].startswith("10.255."):
            return real(address, timeout, *args, **kwargs)
        tried.append(address[0])
        time.sleep(timeout)
        raise TimeoutError

    monkeypatch.setattr(socket, "create_connection", blackhole)
    _endpoint, _secret, delivery = _ping(make_endpoint, owner)
    started = time.monotonic()
    deliver()
    assert time.monotonic() - started < 4.5
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_error) == ("failed", "Timed out")
    assert 1 < len(tried) < 8


def test_a_second_rotation_during_the_overlap_keeps_the_two_latest_secrets(owner, receiver, make_endpoint):
    endpoint, first = make_endpoint()
    endpoint, second = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=owner, overlap_hours=24)
    endpoint, third = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=owner, overlap_hours=24)
    webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    deliver()
    (request,) = receiver.received
    assert len(request.headers[SIGNATURE_HEADER].split()) == 2
    for secret in (third, second):
        verify_signature(body=request.body, headers=request.headers, secret=secret)
    with pytest.raises(SignatureError):
        verify_signature(body=request.body, headers=request.headers, secret=first)


def test_rotating_an_undecryptable_secret_with_the_default_overlap_restores_delivery(
    settings, owner, receiver, make_endpoint
):
    endpoint, _old_secret = make_endpoint()
    # The encryption key changed and the secret was not re-encrypted (docs/operations.md).
    settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = []
    webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    deliver()
    assert WebhookDelivery.objects.get().last_error == "The signing secret cannot be decrypted; rotate it."
    # The customer follows the advice, keeping the default 24 h overlap of the dashboard and the API.
    endpoint, new_secret = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=owner)
    WebhookDelivery.objects.all().delete()
    webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    deliver()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "succeeded", delivery.last_error
    (payload,) = receiver.verified(new_secret)
    assert payload["type"] == "webhook.ping"


def test_no_retry_waits_longer_than_the_documented_cap(settings, monkeypatch):
    """docs/webhooks.md: ±20 % jitter, at most 6 hours: the cap holds with the jitter on top."""
    settings.PORTAL_WEBHOOK_RETRY_BASE_SECONDS = 30
    settings.PORTAL_WEBHOOK_RETRY_MAX_SECONDS = 6 * 60 * 60
    monkeypatch.setattr(delivery.random, "uniform", lambda low, high: high)  # the top of the ±20 %
    waits = [delivery.backoff(n) for n in range(1, 12)]
    assert max(waits) == timedelta(hours=6), f"longest wait {max(waits)}"
