"""A sender working through a long pass keeps its heartbeat fresh.

`deliver_webhooks` recorded its heartbeat only between passes, so a pass longer than five minutes
(a backlog after a receiver's outage, slow receivers) made the Webhooks pages tell every
organisation "Nothing is sending webhooks" while it was sending them. The drain now calls the
heartbeat before each claim and each request, and the command records one at most every 30 s
(docs/operations.md#webhooks).
"""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import pytest
from django.core.management import call_command

from credentials.management.commands import deliver_webhooks as command
from credentials.webhooks import delivery as sender
from credentials.webhooks.delivery import deliveries_drain
from credentials.webhooks.models import DeliveryWorkerHeartbeat
from credentials.webhooks.services import webhook_endpoint_ping

pytestmark = pytest.mark.django_db


def _queue(owner, make_endpoint, receiver, endpoints, pings):
    for n in range(endpoints):
        endpoint, _ = make_endpoint(url=f"{receiver.url}/{n}")
        for _ in range(pings):
            webhook_endpoint_ping(endpoint=endpoint, actor=owner)


def test_the_drain_calls_the_heartbeat_before_each_claim_and_each_request(owner, receiver, make_endpoint):
    _queue(owner, make_endpoint, receiver, endpoints=2, pings=2)  # two batches of two
    calls = []
    deliveries_drain(heartbeat=lambda: calls.append(len(receiver.received)))
    # claim, request, request; claim, request, request; the empty claim that ends the pass.
    assert calls == [0, 0, 1, 2, 2, 3, 4]


def test_a_long_pass_records_a_heartbeat_at_least_every_five_minutes(
    owner, receiver, make_endpoint, monkeypatch
):
    _queue(owner, make_endpoint, receiver, endpoints=1, pings=4)
    # Each attempt takes two minutes (receivers answering at the last moment, many of them): the
    # clock the command reads for its heartbeat moves on accordingly.
    clock = [1000.0]
    monkeypatch.setattr(command, "time", SimpleNamespace(monotonic=lambda: clock[0], sleep=time.sleep))
    beats = []
    real_beat = command.worker_heartbeat_record
    monkeypatch.setattr(command, "worker_heartbeat_record", lambda: beats.append(clock[0]) or real_beat())
    real_send = sender.delivery_send
    finished = []

    def slow_send(delivery):
        result = real_send(delivery)
        clock[0] += 120
        finished.append(clock[0])
        return result

    monkeypatch.setattr(sender, "delivery_send", slow_send)

    call_command("deliver_webhooks", "--once", stdout=io.StringIO())

    assert len(receiver.received) == 4
    gaps = [b - a for a, b in zip(beats, [*beats[1:], finished[-1]], strict=True)]
    assert max(gaps) < 300, f"heartbeats at {beats}, attempts finished at {finished}"
    assert DeliveryWorkerHeartbeat.objects.count() == 1  # one runner, one row


def test_an_idle_loop_records_a_heartbeat_every_30_seconds(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(command, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    beats = []
    monkeypatch.setattr(command, "worker_heartbeat_record", lambda: beats.append(clock[0]))
    heartbeat = command._heartbeat()
    for _ in range(13):  # a call every 5 s, as an idle `--loop --interval 5` drains
        heartbeat()
        clock[0] += 5
    assert beats == [1000.0, 1030.0, 1060.0]
