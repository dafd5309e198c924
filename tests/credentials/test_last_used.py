"""Last-used writes are batched per process: one UPDATE per kind per flush, never one per request."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from credentials import last_used
from credentials.api_keys import verification
from credentials.api_keys.models import ApiKey

pytestmark = pytest.mark.django_db

WHOAMI = "/api/v1/whoami"


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]


@pytest.fixture
def batched(settings):
    """Flush every hour at the end of a request, as a busy server with a long interval would."""
    settings.PORTAL_LAST_USED_FLUSH_SECONDS = 3600
    last_used.flush()  # nothing held from before, and the interval starts now
    yield
    last_used._idle.cancel()
    last_used.flush()


def test_many_keys_cost_one_update_per_flush(batched, make_key, api_key_client):
    made = [make_key(name=f"job-{n}") for n in range(12)]
    with CaptureQueriesContext(connection) as during:
        for n, (_row, plaintext) in enumerate(made):
            response = api_key_client(plaintext).get(WHOAMI, REMOTE_ADDR=f"198.51.100.{n + 1}")
            assert response.status_code == 200
    # Each request: its key's lookup (a cache miss), and no write.
    assert len(during) == len(made) and not _writes(during.captured_queries)
    assert all(row.last_used_at is None for row in ApiKey.objects.all())

    before = timezone.now()
    with CaptureQueriesContext(connection) as flushing:
        assert last_used.flush() == len(made)
    assert len(_writes(flushing.captured_queries)) == 1 and len(flushing) == 1
    for n, (row, _plaintext) in enumerate(made):
        row.refresh_from_db()
        assert before - timedelta(minutes=1) < row.last_used_at <= before
        assert row.last_used_ip == f"198.51.100.{n + 1}"


def test_a_key_used_again_before_the_flush_is_written_once_with_its_first_use(
    batched, make_key, api_key_client
):
    api_key, plaintext = make_key()
    client = api_key_client(plaintext)
    assert client.get(WHOAMI, REMOTE_ADDR="198.51.100.7").status_code == 200
    first = verification._touches.pending[api_key.pk]
    assert client.get(WHOAMI, REMOTE_ADDR="198.51.100.8").status_code == 200
    assert last_used.flush() == 1
    api_key.refresh_from_db()
    assert (api_key.last_used_at, api_key.last_used_ip) == (first[0], "198.51.100.7")


def test_a_use_without_an_address_keeps_the_stored_one(make_key):
    api_key, _plaintext = make_key()
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_ip="203.0.113.5")
    now = timezone.now()
    last_used.update_rows(ApiKey, ("last_used_at", "last_used_ip"), {api_key.pk: (now, None)})
    api_key.refresh_from_db()
    assert (api_key.last_used_at, api_key.last_used_ip) == (now, "203.0.113.5")


def test_more_rows_than_one_statement_holds_are_all_written(make_key):
    keys = [make_key(name=f"job-{n}")[0] for n in range(3)]
    now = timezone.now()
    rows = {key.pk: (now - timedelta(seconds=n), f"192.0.2.{n + 1}") for n, key in enumerate(keys)}
    chunks = dict(last_used._CHUNK)
    try:
        last_used._CHUNK[connection.vendor] = 2
        with CaptureQueriesContext(connection) as flushing:
            last_used.update_rows(ApiKey, ("last_used_at", "last_used_ip"), rows)
    finally:
        last_used._CHUNK.clear()
        last_used._CHUNK.update(chunks)
    assert len(_writes(flushing.captured_queries)) == 2
    for n, key in enumerate(keys):
        key.refresh_from_db()
        assert (key.last_used_at, key.last_used_ip) == rows[key.pk]


def test_the_end_of_a_request_flushes_once_the_interval_has_passed(
    batched, settings, make_key, api_key_client
):
    api_key, plaintext = make_key()
    assert api_key_client(plaintext).get(WHOAMI).status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is None  # held: the interval has not passed
    settings.PORTAL_LAST_USED_FLUSH_SECONDS = 0.05
    time.sleep(0.06)
    other, other_plaintext = make_key(name="other")
    with CaptureQueriesContext(connection) as request:
        assert api_key_client(other_plaintext).get(WHOAMI).status_code == 200
    assert len(_writes(request.captured_queries)) == 1  # both keys, one statement
    api_key.refresh_from_db()
    other.refresh_from_db()
    assert api_key.last_used_at is not None and other.last_used_at is not None


def test_a_process_that_exits_writes_what_it_holds(batched, make_key, api_key_client):
    api_key, plaintext = make_key()
    assert api_key_client(plaintext).get(WHOAMI).status_code == 200
    last_used._flush_at_exit()  # registered with atexit (a graceful stop of the server)
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_a_failing_flush_is_logged_and_dropped(batched, make_key, api_key_client, monkeypatch, caplog):
    api_key, plaintext = make_key()
    assert api_key_client(plaintext).get(WHOAMI).status_code == 200

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(last_used, "update_rows", broken)
    assert last_used.flush() == 1
    assert "Could not record the last use of 1 API keys" in caplog.text
    assert not any(batch.pending for batch in last_used._batches)


@pytest.mark.django_db(transaction=True)
def test_an_idle_process_writes_within_twice_the_interval(settings, make_key, api_key_client):
    api_key, plaintext = make_key()
    settings.PORTAL_LAST_USED_FLUSH_SECONDS = 0.5
    last_used.flush()  # the interval starts now: the request below ends inside it
    assert api_key_client(plaintext).get(WHOAMI).status_code == 200
    api_key.refresh_from_db()
    if api_key.last_used_at is not None:
        pytest.skip("the request ended after the interval (a very slow machine): the timer was not needed")
    timer = last_used._idle.timer
    assert timer is not None
    timer.join(5)  # its own thread and database connection, 2 x 0.5 s after the use
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


@pytest.mark.parametrize("shared", [False, True])
def test_add_many_and_incr_many_answer_as_add_and_incr(shared, request):
    """`hotcache.add_many` / `incr_many`: one pipeline on Redis, one call per key elsewhere, same answers."""
    from django.core.cache import cache

    from portal.infra import hotcache

    if shared:
        request.getfixturevalue("redis_cache")
    cache.set("taken", 1, 60)
    assert hotcache.add_many(["taken", "free", "free"], 1, 60) == {"free"}
    assert cache.get("free") == 1 and not cache.add("free", 1, 60)
    assert hotcache.incr_many({"count": 3, "taken": 2}, 60) == {"count": 3, "taken": 3}
    assert hotcache.incr_many({"count": 4}, 60) == {"count": 7}
    assert cache.get("count") == 7


def test_a_key_held_by_two_servers_is_written_once(
    batched, redis_cache, make_key, api_key_client, monkeypatch
):
    """Once a minute per key per cache: only the flush that adds the marker writes."""
    from django.core.cache import caches

    api_key, plaintext = make_key()
    assert api_key_client(plaintext).get(WHOAMI, REMOTE_ADDR="198.51.100.7").status_code == 200
    held = dict(verification._touches.pending)
    assert last_used.flush() == 1  # this server adds the marker and writes
    api_key.refresh_from_db()
    first = api_key.last_used_at
    # Another server held the same key's use when this one flushed: its flush finds the marker.
    monkeypatch.setattr(verification, "cache", caches.create_connection("default"))
    later = {pk: (first + timedelta(seconds=1), *rest[1:]) for pk, rest in held.items()}
    with CaptureQueriesContext(connection) as flushing:
        verification._write_touches(later)
    assert not _writes(flushing.captured_queries)
    api_key.refresh_from_db()
    assert api_key.last_used_at == first
