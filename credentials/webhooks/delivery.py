"""The sender: claim due outbox rows, POST each signed event, record the outcome and schedule retries.

Claiming is a short transaction (`select_for_update(skip_locked=True)`) that moves each row's
`next_attempt_at` past a lease, so two senders never pick the same row; the HTTP request is
made outside any transaction. A sender that dies mid-request leaves the row to be retried when
the lease ends: delivery is at least once, and receivers deduplicate on `Portal-Webhook-Id`.

Requests go out one at a time, so what is claimed decides who waits: a claim takes at most one
row per endpoint (its oldest due one), and an endpoint that did not answer (a timeout, a refused
connection or destination) gets no further attempt in the same pass. One organisation's slow or
dead receiver then costs the others at most one attempt's time per endpoint and pass, not one per
queued event.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import ssl
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from credentials.webhooks import signing
from credentials.webhooks.destinations import parse_url, resolve
from credentials.webhooks.models import (
    DUE_STATES,
    DeliveryState,
    DeliveryWorkerHeartbeat,
    WebhookDelivery,
    WebhookEndpoint,
)
from portal.infra import outbound

logger = logging.getLogger(__name__)

USER_AGENT = "IdentityPortal-Webhooks/1"
EXCERPT_BYTES = 300


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: an HTTP status, or an error (short, never a secret).

    `unreachable`: no answer came (a timeout, a connection or TLS error, a refused destination),
    so the endpoint's other deliveries would most likely fare the same in this pass.
    """

    status: int | None
    error: str = ""
    excerpt: str = ""
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def backoff(attempts: int) -> timedelta:
    """Return the wait after the `attempts`-th failure: base·2^(n-1), ±20 % jitter, capped (the cap
    is the longest wait, jitter included, as documented)."""
    cap = settings.PORTAL_WEBHOOK_RETRY_MAX_SECONDS
    delay = min(settings.PORTAL_WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), cap)
    return timedelta(seconds=min(delay * random.uniform(0.8, 1.2), cap))  # noqa: S311 (jitter, not a secret)


def body_of(delivery: WebhookDelivery) -> bytes:
    """Return the exact bytes sent (and signed) for a delivery."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """Return the secrets that sign now: the current one, then the previous one during its overlap."""
    secrets = [signing.decrypt_secret(endpoint.secret_ciphertext)]
    if (
        endpoint.previous_secret_ciphertext
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        try:
            secrets.append(signing.decrypt_secret(endpoint.previous_secret_ciphertext))
        except InvalidToken:
            # Re-encryption missed it: the receiver moved to the current secret anyway.
            logger.warning(
                "Webhook endpoint %s: its previous signing secret cannot be decrypted", endpoint.pk
            )
    return secrets


def post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST `body` to `url` once: no redirects followed, short timeouts, a short excerpt kept.

    The SSRF checks, the pinned connection and the watchdog (3 × the timeout, so a receiver
    dripping a byte at a time cannot hold the sender) are `portal.infra.outbound`'s.
    """
    try:
        destination = parse_url(url)
        addresses = resolve(destination)
    except ValidationError as exc:
        return Outcome(None, f"Refused destination: {' '.join(exc.messages)}"[:300], unreachable=True)
    try:
        response = outbound.exchange(
            "POST",
            destination,
            addresses,
            timeout=settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS,
            max_bytes=EXCERPT_BYTES,
            body=body,
            headers=headers,
        )
    except TimeoutError:
        return Outcome(None, "Timed out", unreachable=True)
    except ConnectionRefusedError:
        return Outcome(None, "Connection refused", unreachable=True)
    except ssl.SSLError as exc:
        return Outcome(None, f"TLS error: {exc.reason or type(exc).__name__}"[:300], unreachable=True)
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, f"Connection error: {type(exc).__name__}", unreachable=True)
    status = response.status
    excerpt = response.body.decode("utf-8", "replace")
    return Outcome(status, "" if 200 <= status < 300 else f"HTTP {status}", excerpt)


def attempt_bound_seconds() -> int:
    """Return the longest one attempt can take: the DNS lookup, then the whole exchange's watchdog."""
    return 4 * settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS


def _lease_seconds(batch_size: int) -> int:
    # Long enough for every request of the batch at its worst, plus slack; the sender also
    # stops starting requests when the lease could end during one (see deliveries_drain).
    return batch_size * attempt_bound_seconds() + 60


def deliveries_claim(
    *, batch_size: int, now: datetime | None = None, skip_endpoints: Collection[int] = ()
) -> list[WebhookDelivery]:
    """Take up to `batch_size` due deliveries of active endpoints for this sender alone.

    At most one per endpoint, its oldest due one, so a backlog at one endpoint cannot fill the
    batch ahead of every other endpoint's events. `skip_endpoints` are left out (this pass found
    them unreachable).
    """
    now = now or timezone.now()
    due = WebhookDelivery.objects.filter(
        state__in=DUE_STATES, next_attempt_at__lte=now, endpoint__active=True
    ).exclude(endpoint_id__in=list(skip_endpoints))
    # The window function picks each endpoint's first row; the lock is taken on the outer query,
    # where PostgreSQL allows it, and its due conditions are checked again on the locked row, so a
    # row another sender claimed (and moved past its lease) meanwhile is not taken a second time.
    firsts = due.annotate(
        place=Window(
            RowNumber(), partition_by=[F("endpoint_id")], order_by=[F("next_attempt_at").asc(), F("id").asc()]
        )
    ).filter(place=1)
    with transaction.atomic():
        ids = list(
            due.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=firsts.values("pk"))
            .order_by("next_attempt_at", "id")
            .values_list("pk", flat=True)[:batch_size]
        )
        if ids:
            lease_ends = now + timedelta(seconds=_lease_seconds(batch_size))
            WebhookDelivery.objects.filter(pk__in=ids).update(
                next_attempt_at=lease_ends, leased_until=lease_ends
            )
    return list(
        WebhookDelivery.objects.filter(pk__in=ids)
        .select_related("endpoint")
        .order_by("next_attempt_at", "id")
    )


def _release(delivery: WebhookDelivery) -> None:
    """Give a claimed row back without counting an attempt (due again at once, if its endpoint is active).

    Only while this sender's lease holds it: after the lease another sender may have claimed it.
    """
    WebhookDelivery.objects.filter(
        pk=delivery.pk, state__in=DUE_STATES, leased_until=delivery.leased_until
    ).update(leased_until=None, next_attempt_at=timezone.now())


def delivery_send(delivery: WebhookDelivery) -> tuple[WebhookDelivery, Outcome | None]:
    """Make one attempt at a claimed delivery and record what happened; return the row and the outcome.

    The endpoint is read again first: one deleted since the claim gets nothing (the row is gone
    with it), one disabled gets its row back unattempted (it waits until the endpoint is enabled),
    and the URL and secrets are the current ones (a rotation without overlap stops the old secret
    at once). The outcome is None when no request was made.
    """
    endpoint = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).first()
    if endpoint is None:
        return delivery, None
    if not endpoint.active:
        _release(delivery)
        return delivery, None
    delivery.endpoint = endpoint
    body = body_of(delivery)
    timestamp = int(time.time())
    try:
        secrets = signing_secrets(endpoint, timezone.now())
    except InvalidToken:
        # The encryption key changed and the secret was not re-encrypted (docs/operations.md).
        logger.error("Webhook endpoint %s: its signing secret cannot be decrypted", endpoint.pk)
        outcome = Outcome(None, "The signing secret cannot be decrypted; rotate it.")
        return delivery_record(delivery=delivery, outcome=outcome), outcome
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.ID_HEADER: str(delivery.event_id),
        signing.TIMESTAMP_HEADER: str(timestamp),
        signing.SIGNATURE_HEADER: signing.signature_header(secrets, timestamp, body),
        "Portal-Webhook-Event": delivery.event_type,
    }
    outcome = post(endpoint.url, body, headers)
    return delivery_record(delivery=delivery, outcome=outcome), outcome


def _printable(text: str) -> str:
    # A receiver's body may hold NUL (which PostgreSQL text refuses) or terminal control codes.
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)


@transaction.atomic
def delivery_record(*, delivery: WebhookDelivery, outcome: Outcome) -> WebhookDelivery:
    """Store an attempt's outcome: delivered, retry later with back-off, or give up after the last attempt."""
    current = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).first()
    if current is None or current.state == DeliveryState.SUCCEEDED:
        # The endpoint was deleted meanwhile, or another sender delivered it (at least once):
        # a late failure must not turn "delivered" back into "will retry".
        return current or delivery
    delivery = current
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status_code = outcome.status
    delivery.last_error = _printable(outcome.error)[:300]
    delivery.response_excerpt = _printable(outcome.excerpt)[:300]
    delivery.leased_until = None
    if outcome.ok:
        delivery.state = DeliveryState.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif delivery.attempts >= settings.PORTAL_WEBHOOK_MAX_ATTEMPTS:
        delivery.state = DeliveryState.DEAD
        delivery.next_attempt_at = None
    else:
        delivery.state = DeliveryState.FAILED
        delivery.next_attempt_at = now + backoff(delivery.attempts)
    delivery.save()
    log = logger.info if outcome.ok else logger.warning
    log(
        "Webhook %s (%s) to endpoint %s: attempt %s, %s",
        delivery.event_id,
        delivery.event_type,
        delivery.endpoint_id,
        delivery.attempts,
        outcome.status or outcome.error,
    )
    return delivery


def deliveries_drain(
    *,
    batch_size: int = 20,
    limit: int | None = None,
    stop: Callable[[], bool] = lambda: False,
    heartbeat: Callable[[], None] = lambda: None,
) -> dict[str, int]:
    """Send every delivery due now, batch by batch; return how many ended in each state.

    `stop` is asked before each request: a sender told to shut down leaves the rest of its
    batch, which goes out when the lease ends. Nor does a request start when the lease could
    end before it does (slow receivers): another sender could claim the row meanwhile.
    `heartbeat` is called before each claim and each request, so a long pass still shows the
    runner alive (the command's records at most every 30 s).

    An endpoint whose attempt got no answer (a timeout, a connection error, a refused
    destination) is left out of the rest of the pass: its other due deliveries are not claimed,
    use no attempt and keep their retry times; the next pass tries the endpoint again.
    """
    counts = {state: 0 for state in DeliveryState.values}
    sent = 0
    unreachable: set[int] = set()
    while (limit is None or sent < limit) and not stop():
        heartbeat()
        batch = deliveries_claim(
            batch_size=batch_size if limit is None else min(batch_size, limit - sent),
            skip_endpoints=unreachable,
        )
        if not batch:
            break
        lease_ends = batch[0].leased_until
        for delivery in batch:
            if stop() or timezone.now() + timedelta(seconds=attempt_bound_seconds()) > lease_ends:
                break
            heartbeat()
            try:
                delivery, outcome = delivery_send(delivery)
            except Exception:  # one broken row must not stop the others
                logger.exception("Webhook delivery %s failed unexpectedly", delivery.pk)
                try:  # count the attempt, so a row that always breaks ends as "gave up"
                    delivery = delivery_record(delivery=delivery, outcome=Outcome(None, "Internal error"))
                    counts[delivery.state] += 1
                except Exception:  # noqa: BLE001 - e.g. the database is gone; the lease ends, it is retried
                    counts[DeliveryState.FAILED] += 1
            else:
                if outcome is None:  # its endpoint was deleted or disabled since the claim
                    continue
                counts[delivery.state] += 1
                if outcome.unreachable:
                    unreachable.add(delivery.endpoint_id)
            sent += 1
    return counts


def worker_name() -> str:
    """Return this runner's name in the heartbeat table: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def worker_heartbeat_record(*, worker: str | None = None) -> None:
    """Record that a runner made a pass now, and forget runners silent for a day.

    Not audited: it is the runner's pulse, not a change anyone made.
    """
    now = timezone.now()
    name = worker or worker_name()
    DeliveryWorkerHeartbeat.objects.update_or_create(worker=name, defaults={"seen_at": now})
    DeliveryWorkerHeartbeat.objects.filter(seen_at__lt=now - timedelta(days=1)).delete()
