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
