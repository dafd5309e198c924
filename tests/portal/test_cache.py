"""The Redis cache backend against a real Redis server the test starts and stops."""

from __future__ import annotations

import time

import pytest

from portal.infra.cache import ResilientRedisCache


def test_cache_works_then_degrades_then_recovers(redis_server, caplog, monkeypatch):
    monkeypatch.setattr("portal.infra.cache.BACKOFF_SECONDS", 0.2)
    cache = ResilientRedisCache(
        redis_server.url, {"OPTIONS": {"socket_connect_timeout": 0.3, "socket_timeout": 0.3}}
    )
    cache.set("k", "v", 30)
    assert cache.get("k") == "v"
    assert cache.add("n", 1, 30) is True and cache.incr("n") == 2
    with pytest.raises(ValueError):
        cache.incr("missing")  # Django's contract, not an outage

    redis_server.stop()
    assert cache.get("k") is None  # a miss, not an exception
    assert cache.get("k", "fallback") == "fallback"
    assert cache.set("k", "v2", 30) is None
    assert cache.add("x", 1) is False
    assert cache.get_many(["a", "b"]) == {}
    assert cache.delete("k") is False
    assert "cache unavailable" in caplog.text

    redis_server.start()  # same port
    deadline = time.monotonic() + 10
    while True:
        time.sleep(0.25)
        cache.set("k", "back", 30)
        if cache.get("k") == "back" or time.monotonic() > deadline:
            break
    assert cache.get("k") == "back"


def test_the_hot_read_keeps_one_connection_and_reopens_it_when_dropped(redis_server, caplog):
    """`get_many_recent` reads on a connection of its own: no pool checkout, and a drop is no outage."""
    import redis

    cache = ResilientRedisCache(redis_server.url, {"OPTIONS": {"socket_timeout": 0.5}})
    cache.set_many({"a": 1, "b": {"x": "y"}}, 30)
    assert cache.get_many_recent(["a", "b", "c"], 0.0) == ({"a": 1, "b": {"x": "y"}}, [])
    hot = cache._hot_client
    first_id = hot.client_id()
    assert cache.get_many_recent(["a"], 0.0)[0] == {"a": 1}
    assert cache._hot_client is hot and hot.client_id() == first_id  # the same connection again

    admin = redis.Redis.from_url(redis_server.url)
    admin.client_kill_filter(_id=first_id)  # the server drops it (a restart, an idle timeout)
    admin.close()
    assert cache.get_many_recent(["a", "b"], 0.0)[0] == {"a": 1, "b": {"x": "y"}}  # reconnected, retried
    assert hot.client_id() != first_id
    assert "cache unavailable" not in caplog.text

    redis_server.stop()
    assert cache.get_many_recent(["a"], 0.0) == ({}, [])  # an outage: misses, as get_many answers
    assert "cache unavailable" in caplog.text


def test_add_many_and_incr_many_run_in_chunks_and_load_their_script_when_the_server_lost_it(
    redis_server, monkeypatch
):
    """One Lua call per SCRIPT_CHUNK keys, answers in order; a flushed script cache is reloaded."""
    import redis

    monkeypatch.setattr("portal.infra.cache.SCRIPT_CHUNK", 2)
    cache = ResilientRedisCache(redis_server.url, {})
    cache.set("k2", 1, 30)
    keys = [f"k{n}" for n in range(5)]
    assert cache.add_many(keys, "v", 30) == {"k0", "k1", "k3", "k4"}
    assert cache.get_many(keys) == {"k0": "v", "k1": "v", "k2": 1, "k3": "v", "k4": "v"}
    assert cache.incr_many({"c0": 2, "c1": 3, "c2": 4}, 30) == {"c0": 2, "c1": 3, "c2": 4}

    admin = redis.Redis.from_url(redis_server.url)
    admin.script_flush()  # a restarted server has no scripts
    assert cache.incr_many({"c0": 1, "c2": 1}, 30) == {"c0": 3, "c2": 5}
    assert 0 < admin.ttl(cache.make_key("c0")) <= 30
    assert cache.add_many(["k0", "new"], "v", 30) == {"new"}
    assert 0 < admin.ttl(cache.make_key("new")) <= 30
    admin.close()


def test_an_invalidation_that_must_land_is_tried_during_the_back_off(redis_server):
    """After a failure the cache skips Redis for a while; a revocation's write does not."""
    import redis

    cache = ResilientRedisCache(redis_server.url, {})
    cache.set_many({"snapshot": "active", "tombstone": "active"}, 30)
    cache._down_until = time.monotonic() + 60  # a failure a moment ago
    assert cache.delete("snapshot") is False  # an ordinary write skips Redis meanwhile
    assert cache.delete_many_strict(["snapshot"]) is True
    assert cache.set_many_strict({"tombstone": "forgotten"}, 30) is True
    admin = redis.Redis.from_url(redis_server.url)
    assert admin.get(cache.make_key("snapshot")) is None
    assert cache._cache._serializer.loads(admin.get(cache.make_key("tombstone"))) == "forgotten"
    admin.close()


def test_an_invalidation_redis_refuses_is_made_before_the_process_reads_again(
    redis_server, caplog, monkeypatch
):
    """Refused invalidations are owed by the process (every thread's instance) and made first."""
    import redis
    import redis.connection

    cache = ResilientRedisCache(redis_server.url, {})
    other_thread = ResilientRedisCache(redis_server.url, {})  # Django's caches are per thread
    cache.set_many({"snapshot": "active", "tombstone": "active", "unrelated": 1}, 30)
    assert cache.get_many_recent(["snapshot"], 60.0) == ({"snapshot": "active"}, [])

    def refused(self, *args, **options):
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", refused)
    assert cache.delete_many_strict(["snapshot"]) is False
    assert cache.set_many_strict({"tombstone": "forgotten"}, 30) is False
    assert "could not invalidate 1 cache key(s)" in caplog.text
    assert other_thread.get("unrelated") is None  # still refused: a miss, and still owed
    monkeypatch.undo()

    admin = redis.Redis.from_url(redis_server.url)
    assert admin.exists(cache.make_key("snapshot"), cache.make_key("tombstone")) == 2  # Redis kept them
    cache._down_until = other_thread._down_until = 0.0  # past the back-off
    assert other_thread.get_many_recent(["snapshot", "tombstone", "unrelated"], 60.0)[0] == {"unrelated": 1}
    assert admin.exists(cache.make_key("snapshot"), cache.make_key("tombstone")) == 0
    assert "made 2 owed cache invalidation(s)" in caplog.text
    assert cache.get_many_recent(["snapshot"], 60.0)[0] == {}  # this instance forgot what it read too
    admin.close()
