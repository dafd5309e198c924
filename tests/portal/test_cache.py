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
