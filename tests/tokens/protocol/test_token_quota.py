"""Token issuance quotas per application (per hour, per day; enforce or log-only) at /oauth/token."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.cache import cache

from portal.infra.metrics import TOKEN_QUOTA_EXCEEDED
from tests.credentials.api_keys.test_lean_path import cache_reads  # noqa: F401  the cache-call spy
from tests.tokens.conftest import basic
from tests.tokens.protocol.test_token_exchange import customer_key, exchange, gateway  # noqa: F401
from tokens.models import M2MApplication
from tokens.protocol import quota

pytestmark = pytest.mark.django_db

#: A Monday, 10:00:00 UTC: the start of an hour and 10 hours into the day.
T0 = 1_796_810_400.0


@pytest.fixture
def clock(rate_clock):
    """The limiters' clock (tests/support/clock.py) at T0: their windows move only when a test moves it."""
    rate_clock.now = T0
    return rate_clock


@pytest.fixture
def limits(settings):
    settings.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 100
    return settings


def token(client, creds):
    return client.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
    )


def with_quota(creds, *, per_hour=None, per_day=None, mode="enforce"):
    M2MApplication.objects.filter(pk=creds.application.pk).update(
        tokens_per_hour=per_hour, tokens_per_day=per_day, token_quota_mode=mode
    )
    return creds


def assert_slow_down(response, *, at_most: int):
    assert response.status_code == 429, response.content
    assert 1 <= int(response["Retry-After"]) <= at_most
    assert response["Cache-Control"] == "no-store"
    assert json.loads(response.content)["error"] == "slow_down"


def test_the_hourly_quota_is_enforced_and_resets_with_the_next_hour(client, clock, limits, make_app):
    app = with_quota(make_app(), per_hour=3)
    assert [token(client, app).status_code for _ in range(3)] == [200] * 3
    clock.now = T0 + 3599 - 60  # a minute before the hour ends
    assert_slow_down(token(client, app), at_most=61)
    clock.now = T0 + 3600
    assert token(client, app).status_code == 200


def test_the_quota_is_shared_through_redis(redis_cache, client, clock, limits, make_app):
    app = with_quota(make_app(), per_hour=2)
    assert [token(client, app).status_code for _ in range(3)] == [200, 200, 429]


def test_the_daily_quota_spans_hours_and_resets_at_midnight_utc(client, clock, limits, make_app):
    app = with_quota(make_app(), per_hour=2, per_day=3)
    assert [token(client, app).status_code for _ in range(2)] == [200, 200]
    assert_slow_down(token(client, app), at_most=3600)  # the hour is used up
    clock.now = T0 + 3600
    assert token(client, app).status_code == 200
    refused = token(client, app)  # the day is used up: wait until 00:00 UTC (14 hours from T0)
    assert_slow_down(refused, at_most=86400)
    assert int(refused["Retry-After"]) == 13 * 3600
    clock.now = T0 + 14 * 3600
    assert token(client, app).status_code == 200


def test_refused_requests_are_not_counted_as_issued(client, clock, limits, make_app):
    app = with_quota(make_app(), per_day=2)
    for _ in range(2):
        assert token(client, app).status_code == 200
    for _ in range(3):
        assert token(client, app).status_code == 429
    assert cache.get(quota.hot_keys(app.client_id)[1]) == 2


def logged_only() -> float:
    return TOKEN_QUOTA_EXCEEDED.labels(window="hour", mode="log_only")._value.get()


def test_log_only_issues_warns_without_a_secret_and_counts(client, clock, limits, make_app, caplog):
    app = with_quota(make_app(), per_hour=1, mode="log_only")
    before = logged_only()
    with caplog.at_level(logging.WARNING, logger="tokens.protocol.quota"):
        assert [token(client, app).status_code for _ in range(3)] == [200] * 3
    warnings = [r for r in caplog.records if r.name == "tokens.protocol.quota"]
    assert len(warnings) == 2
    assert app.client_id in warnings[0].getMessage() and app.client_secret not in warnings[0].getMessage()
    after = logged_only()
    assert after - before == 2
    assert cache.get(quota.hot_keys(app.client_id)[0]) == 3  # every issued token counts


def test_an_own_quota_takes_precedence_over_the_global_limit(client, clock, limits, make_app):
    limits.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 2
    own, default = with_quota(make_app(), per_hour=5), make_app(name="Default")
    assert [token(client, own).status_code for _ in range(6)] == [200] * 5 + [429]
    assert [token(client, default).status_code for _ in range(3)] == [200, 200, 429]


def test_the_quota_holds_for_token_exchange(client, clock, limits, gateway, customer_key):  # noqa: F811
    with_quota(gateway, per_hour=2)
    _key, plaintext = customer_key
    statuses = [exchange(client, gateway, plaintext).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize("own_quota", [False, True])
def test_one_cache_read_per_token_request(client, clock, limits, make_app, cache_reads, own_quota):  # noqa: F811
    app = make_app()
    if own_quota:
        with_quota(app, per_hour=100, per_day=1000)
    assert token(client, app).status_code == 200  # warms the signing key, catalogue and counters
    cache_reads.clear()
    assert token(client, app).status_code == 200
    reads = [call for call in cache_reads if call in ("get", "get_many")]
    assert reads == ["get_many"], cache_reads
    # Writes: one INCR per counter the batch saw (the global minute, or the hour and the day).
    assert [call for call in cache_reads if call not in ("get", "get_many")] == ["incr"] * (
        2 if own_quota else 1
    )
