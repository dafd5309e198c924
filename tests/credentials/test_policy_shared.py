"""Runtime policy and metering across app servers sharing Redis (TEST_REDIS_URL; skipped without Redis)."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import Client

from credentials import policy, usage
from credentials.governance.edits import credential_policy_set
from portal.infra import ratelimit
from portal.infra.cache import ResilientRedisCache

pytestmark = pytest.mark.django_db

INSIDE, OUTSIDE = "203.0.113.7", "198.51.100.9"


@pytest.fixture
def redis_cache(redis_cache):
    """The shared Redis cache (tests/conftest.py), with this process's usage counts forgotten."""
    usage._counts.clear()
    yield
    usage._counts.clear()


def other_server():
    server = caches.create_connection("default")
    assert server is not caches["default"] and isinstance(server, ResilientRedisCache)
    return server


def whoami(key: str, ip: str = INSIDE):
    return Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)


# One fixed window for the three requests (`rate_clock`): a minute's end between them would reset the count.
@pytest.mark.usefixtures("rate_clock")
def test_the_limit_is_shared_between_app_servers(redis_cache, make_key, monkeypatch):
    _, key = make_key(rate_limit={"requests": 2, "per_seconds": 60})
    assert whoami(key).status_code == 200
    monkeypatch.setattr(ratelimit, "cache", other_server())
    assert whoami(key, OUTSIDE).status_code == 200
    response = whoami(key)
    assert response.status_code == 429 and response["RateLimit"].startswith('"default";r=0;')


def test_a_policy_change_reaches_every_server_at_once(redis_cache, make_key, owner, monkeypatch):
    from credentials.api_keys import verification

    api_key, key = make_key()
    assert whoami(key, OUTSIDE).status_code == 200  # server A caches the snapshot (30 s with Redis)
    monkeypatch.setattr(verification, "cache", other_server())
    assert whoami(key, OUTSIDE).status_code == 200  # server B reads the same shared snapshot
    credential_policy_set(credential=api_key, actor=owner, allowed_ips=[INSIDE])
    assert whoami(key, OUTSIDE).status_code == 403  # on B, with no wait
    monkeypatch.undo()
    assert whoami(key, OUTSIDE).status_code == 403  # and on A


def test_metering_counts_from_two_servers_add_up(redis_cache, make_key, monkeypatch):
    api_key, key = make_key()
    for _ in range(3):
        assert whoami(key).status_code == 200
    usage.flush()
    monkeypatch.setattr(usage, "cache", other_server())
    for _ in range(2):
        assert whoami(key).status_code == 200
    usage.flush()
    usage.rollup()
    usage.rollup()
    from credentials.models import UsageBucket

    minutes = UsageBucket.objects.filter(granularity="minute", credential_id=api_key.key_id)
    assert sum(minutes.values_list("count", flat=True)) == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_servers_count_exactly_and_concurrent_rollups_never_double(
    require_postgres, redis_cache, make_key
):
    """Two threads, each with its own Redis connection, verify and flush; two roll-ups run at once."""
    import threading

    from django.db import connection

    from credentials.api_keys.verification import api_key_verify
    from credentials.models import UsageBucket

    api_key, key = make_key(rate_limit={"requests": 150, "per_seconds": 86400})
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def serve(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(n):
                verification = api_key_verify(key)
                refused = policy.api_key_refusal(verification.key, INSIDE)
                usage.record_api_key(verification, refused.get_codes() if refused else None)
                if i % 7 == 0:
                    usage.flush()
            usage.flush()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=serve, args=(100,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    def roll() -> None:
        try:
            barrier.wait(timeout=10)
            usage.rollup()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=roll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    totals: dict[str, int] = {}
    for outcome, n in UsageBucket.objects.filter(
        granularity="minute", credential_id=api_key.key_id
    ).values_list("outcome", "count"):
        totals[outcome] = totals.get(outcome, 0) + n
    # Exactly the limit went through, across both "servers"; every other use was counted as limited.
    assert totals == {"valid": 150, "rate_limited": 50}
    hours = UsageBucket.objects.filter(granularity="hour", credential_id=api_key.key_id)
    assert sum(hours.values_list("count", flat=True)) == 200
