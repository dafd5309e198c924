"""Concurrent insight roll-ups on PostgreSQL add, not overwrite (an advisory lock serialises merges)."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from django.db import connections

from credentials import usage
from credentials.insight import recorder
from credentials.insight import rollup as insight_rollup
from credentials.insight.models import UsageClientIp
from credentials.models import UsageBucket
from tests.support.threads import run_together

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_usage_counters"),
]

IP = "203.0.113.7"


def _notes(api_key, n: int, at: float) -> dict:
    return {
        f"api_key|{api_key.key_id}|{api_key.organization_id}": {
            "ips": {IP: [n, at]},
            "denials": [],
            "scopes": {},
        }
    }


def test_two_concurrent_insight_rollups_add_a_new_ips_counts(require_postgres, make_key, monkeypatch):
    """Two servers' flushes (3 and 5 uses from one new address) rolled up by two servers at once."""
    api_key, _ = make_key()
    minute = usage._minute()
    now = time.time()
    recorder.push(_notes(api_key, 3, now - 2), minute - 1)  # server A's flush
    recorder.push(_notes(api_key, 5, now - 1), minute)  # server B's flush

    # Both roll-ups have read the (absent) row before either inserts it: the window is real,
    # the barrier only makes it certain.
    barrier = threading.Barrier(2, timeout=2)  # the first waits here while the second waits for the lock
    original = UsageClientIp.objects.bulk_create

    def bulk_create(*args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(UsageClientIp.objects, "bulk_create", bulk_create)
    errors = []

    def run(first, last):
        try:
            insight_rollup.rollup(first_minute=first, last_minute=last)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=run, args=(minute - 1, minute - 1)),
        threading.Thread(target=run, args=(minute, minute)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    row = UsageClientIp.objects.get(credential_id=api_key.key_id, ip=IP)
    assert row.count == 8, f"lost update: {row.count} of 8 requests from {IP} kept"


def test_an_earlier_usage_rollup_never_writes_below_a_later_one(require_postgres, make_key, monkeypatch):
    """Two `rollup_usage` runs overlapping (two servers): run A read the cache (5 uses) before run B
    read it (7) and wrote; A then writes under the roll-up lock, after reading what B stored, so a
    stored count never goes down (docs/usage.md: "only ever raised")."""
    api_key, _ = make_key()
    for _ in range(5):
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    a_read, b_done = threading.Event(), threading.Event()
    original = usage._never_lower

    def never_lower(rows):
        original(rows)
        if threading.current_thread().name == "A":
            a_read.set()
            b_done.wait(timeout=3)  # B may be waiting for A's lock: then A goes on first

    monkeypatch.setattr(usage, "_never_lower", never_lower)

    def run_b():
        a_read.wait(timeout=10)
        for _ in range(2):
            usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
        try:
            return usage.rollup()
        finally:
            b_done.set()

    results = run_together(("A", usage.rollup), ("B", run_b))
    assert not any(isinstance(value, BaseException) for value in results.values()), results
    stored = {
        granularity: sum(
            UsageBucket.objects.filter(credential_id=api_key.key_id, granularity=granularity).values_list(
                "count", flat=True
            )
        )
        for granularity in ("minute", "hour", "day")
    }
    assert stored == {"minute": 7, "hour": 7, "day": 7}, stored
