"""The Redis cache backend against a real Redis server the test starts and stops."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from portal.infra.cache import ResilientRedisCache
from tests.support.servers import free_port


@pytest.fixture
def redis_server():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while (
        subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG"
    ):
        assert time.monotonic() < deadline, "redis did not start"
        time.sleep(0.1)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


def test_cache_works_then_degrades_then_recovers(redis_server, caplog, monkeypatch):
    port, proc = redis_server
    monkeypatch.setattr("portal.infra.cache.BACKOFF_SECONDS", 0.2)
    cache = ResilientRedisCache(
        f"redis://127.0.0.1:{port}/0", {"OPTIONS": {"socket_connect_timeout": 0.3, "socket_timeout": 0.3}}
    )
    cache.set("k", "v", 30)
    assert cache.get("k") == "v"
    assert cache.add("n", 1, 30) is True and cache.incr("n") == 2
    with pytest.raises(ValueError):
        cache.incr("missing")  # Django's contract, not an outage

    proc.terminate()
    proc.wait(timeout=10)
    assert cache.get("k") is None  # a miss, not an exception
    assert cache.get("k", "fallback") == "fallback"
    assert cache.set("k", "v2", 30) is None
    assert cache.add("x", 1) is False
    assert cache.get_many(["a", "b"]) == {}
    assert cache.delete("k") is False
    assert "cache unavailable" in caplog.text

    restarted = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            time.sleep(0.25)
            cache.set("k", "back", 30)
            if cache.get("k") == "back" or time.monotonic() > deadline:
                break
        assert cache.get("k") == "back"
    finally:
        restarted.terminate()
        restarted.wait(timeout=10)
