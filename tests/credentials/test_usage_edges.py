"""Usage metering and last use at their edges: an idle process, a listing that failed, refusals that
are no use, the global issuance limit, a Redis outage, a mapped client address, a reply lost, the
exit flush, a flush during the cache's back-off, an outage that outlasts it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import redis
from django.core.cache import cache, caches
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from credentials import usage
from credentials.api_keys.models import ApiKey
from credentials.insight import recorder
from credentials.insight.models import UsageClientIp
from portal.infra.cache import ResilientRedisCache
from tests.factories import ScopeFactory
from tests.support.usage import outcome_counts
from tests.tokens.conftest import basic
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.clients.services import m2m_app_set_exchange, m2m_app_set_staff_flag
from tokens.models import ClientSecret, M2MApplication
from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_usage_counters")]

INSIDE, OUTSIDE = "203.0.113.7", "198.51.100.9"


# --- 1. an idle process holds its counts indefinitely ------------------------------------


def test_counts_held_by_an_idle_process_reach_the_cache(make_key, settings):
    """A worker that gets no further request never flushes: other servers' roll-ups never see it."""
    settings.PORTAL_USAGE_FLUSH_SECONDS = 0.2
    api_key, _ = make_key()
    usage.flush()  # a flush just happened (busy moment)
    usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    usage._flush_if_due()  # end of the request that used the key: not due yet, held
    assert usage._counts
    time.sleep(1.5)  # > 5 x the flush interval, and no request arrives at this worker
    held = usage.minute_counts(usage._minute())
    assert held.get(("api_key", api_key.key_id, api_key.organization_id, "valid")) == 1, (
        "the count is still only in this process's memory; another server's rollup_usage cannot see "
        "it, and once it is older than the roll-up's look-back (2 h) it is lost for good"
    )


# --- 2. a series whose listing failed once is never listed again -------------------------


def test_a_series_whose_listing_failed_is_counted_by_later_healthy_flushes(
    redis_cache, make_key, monkeypatch
):
    api_key, _ = make_key()
    when = datetime.now(UTC).replace(second=10, microsecond=0)
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())
    usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    # Redis answers the INCRBY pipeline, then times out on the set_many of the slot names
    # (ResilientRedisCache fails soft: set_many answers the keys it did not store).
    with monkeypatch.context() as m:
        m.setattr(ResilientRedisCache, "set_many", lambda self, data, *a, **k: list(data))
        usage.flush()
    # Redis is healthy again: the same credential is used twice more in the same minute.
    for _ in range(2):
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    usage.flush()
    monkeypatch.undo()
    usage.rollup(now=when)
    assert outcome_counts(api_key.key_id).get("valid", 0) >= 2, (
        "uses flushed while Redis was healthy were lost: the series exists in Redis (its total "
        "!= this flush's count, so no later flush lists it) but was never listed under its minute"
    )


# --- 3. last_used moves for refused requests ---------------------------------------------


def test_a_client_secret_refused_for_its_ip_is_not_last_used(make_app):
    creds = make_app(name="svc", scopes=["orders:read"], allowed_ips=[INSIDE])
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
        REMOTE_ADDR=OUTSIDE,
    )
    assert response.status_code in (400, 401, 403), response.content
    secret = ClientSecret.objects.get(application=creds.application)
    assert secret.last_used_at is None, "a token request refused by the IP allowlist counts as a use"


def test_a_client_secret_refused_for_scope_is_not_last_used(make_app):
    creds = make_app(name="svc", scopes=["orders:read"])
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": "orders:write"},
        HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
        REMOTE_ADDR=INSIDE,
    )
    assert response.status_code == 400, response.content
    secret = ClientSecret.objects.get(application=creds.application)
    assert secret.last_used_at is None, "a token request refused for its scope counts as a use"


def test_an_api_key_refused_for_scope_is_not_last_used(make_key, scopes):
    ScopeFactory(name="usage:read")
    target, _ = make_key(name="target")
    other, raw = make_key(name="other")  # no usage:read
    response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(
        f"/api/v1/orgs/acme/usage/?credential={target.key_id}", REMOTE_ADDR=INSIDE
    )
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"
    assert ApiKey.objects.get(pk=other.pk).last_used_at is None, "a 403 insufficient_scope counts as a use"


# --- 5. a token request refused by the global per-application limit counts nothing ---------


# The limit counts in fixed one-minute windows: its clock stands still here (`rate_clock`), so the
# three requests share one even when the first (the slowest) ends in the next minute.
@pytest.mark.usefixtures("rate_clock")
def test_the_global_issuance_limit_counts_as_rate_limited(make_app, settings):
    settings.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 2
    creds = make_app(name="svc", scopes=["orders:read"])  # no quota of its own: the global limit is its limit
    statuses = [
        Client()
        .post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
            REMOTE_ADDR=INSIDE,
        )
        .status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    usage.rollup()
    assert outcome_counts(creds.client_id) == {"valid": 2, "rate_limited": 1}


# --- 6. with Redis down, an API key's last use is never written ----------------------------


@pytest.fixture
def dead_redis(settings):
    """The default cache is a ResilientRedisCache whose Redis does not answer (an outage)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.infra.cache.ResilientRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    yield caches["default"]


def test_an_api_keys_last_use_is_written_while_redis_is_down(dead_redis, make_key):
    api_key, key = make_key()
    response = Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=INSIDE)
    assert response.status_code == 200  # verification goes on from PostgreSQL
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None, (
        "the once-a-minute marker could not be added (Redis down: add_many fails soft with "
        "'nothing added'), so the key's last use was dropped"
    )


def test_a_moved_key_in_use_during_a_redis_outage_is_not_auto_revoked(dead_redis, make_key, owner):
    """Consequence of the above: no usage counts (fail-open) and no last_used_at -> no evidence of use."""

    api_key, key = make_key(name="nightly export")
    api_key_move_to_m2m_app(api_key=api_key, actor=owner)
    three_days_ago = timezone.now() - timedelta(days=3)
    M2MApplication.objects.filter(moved_from_key=api_key).update(created=three_days_ago)
    ClientSecret.objects.filter(application__moved_from_key=api_key).update(created_at=three_days_ago)
    ApiKey.objects.filter(pk=api_key.pk).update(cutover_quiet_hours=1, cutover_auto_revoke=True)
    for _ in range(3):  # the integration still uses the key, right now
        response = Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=INSIDE)
        assert response.status_code == 200
    usage.rollup()
    call_command("complete_cutovers", stdout=StringIO())
    assert ApiKey.objects.get(pk=api_key.pk).status == "active", (
        "a key used seconds ago was revoked as 'quiet for 1 hour'"
    )


# --- 7. an IPv4-mapped client_ip reported at a token exchange is a second address ------------


def test_an_ipv4_mapped_client_ip_at_exchange_is_one_address(
    make_app, other_organization, outsider, make_key
):

    gateway = make_app(organization=other_organization, app_owner=outsider, name="API gateway")
    application = m2m_app_set_exchange(application=gateway.application, allowed=True, actor=None)
    m2m_app_set_staff_flag(application=application, flag="may_report_client_ip", value=True, actor=None)
    customer, key = make_key(name="shop")
    for reported in (INSIDE, f"::ffff:{INSIDE}"):
        response = Client().post(
            "/oauth/token",
            {
                "grant_type": GRANT_TYPE,
                "subject_token_type": API_KEY_TOKEN_TYPE,
                "subject_token": key,
                "client_ip": reported,
            },
            HTTP_AUTHORIZATION=basic(gateway.client_id, gateway.client_secret),
            REMOTE_ADDR="192.0.2.10",
        )
        assert response.status_code == 200, response.content
    usage.rollup()
    ips = dict(UsageClientIp.objects.filter(credential_id=customer.key_id).values_list("ip", "count"))
    assert ips == {INSIDE: 2}, ips
    assert ApiKey.objects.get(pk=customer.pk).last_used_ip == INSIDE


# --- 8. counts around cache failures: a reply lost, the exit flush, the back-off ----------------


def _a_minute_ago_and_more() -> datetime:
    return datetime.now(UTC).replace(second=10, microsecond=0) - timedelta(minutes=2)


def test_counts_flushed_after_an_incr_whose_reply_was_lost_are_still_rolled_up(
    redis_cache, make_key, monkeypatch
):
    """Redis runs a flush's INCRBY script, but the reply never arrives (a read timeout).

    ResilientRedisCache answers `{}` and backs off; the series' counter exists in Redis without a
    listing, and every later flush of that minute (this server's or another's) sees a total above
    its own count and takes the series as listed: the flush lists all its series with the next one.
    """
    api_key, _ = make_key()
    when = _a_minute_ago_and_more()
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())
    usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")

    real_scripted = ResilientRedisCache._scripted

    def reply_lost(self, source, keys, args_of):
        real_scripted(self, source, keys, args_of)  # Redis did the work...
        raise redis.exceptions.TimeoutError("Timeout reading from socket")  # ...the client never saw it

    with monkeypatch.context() as m:
        m.setattr(ResilientRedisCache, "_scripted", reply_lost)
        usage.flush()
    assert usage._unlisted, "the series of a flush whose counts were not answered wait to be listed"
    cache._down_until = 0.0  # the back-off is over: Redis is healthy again

    for _ in range(3):  # three more uses in the same minute, flushed while Redis is healthy
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    usage.flush()
    monkeypatch.undo()
    usage.rollup(now=when + timedelta(minutes=1))
    assert outcome_counts(api_key.key_id).get("valid", 0) == 4, (
        "uses flushed while Redis was healthy were never rolled up: the series' counter exists in "
        "Redis but was never listed under its minute"
    )


def test_a_series_listed_twice_or_never_counted_is_harmless(redis_cache, make_key, monkeypatch):
    """What a lost reply lists may be listed already, or have no counter (Redis never ran the
    script): the roll-up reads each listed series once and skips a missing counter."""
    api_key, _ = make_key()
    when = _a_minute_ago_and_more()
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())
    usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    usage.flush()  # created and listed
    minute = usage._minute()
    listed = f"api_key|{api_key.key_id}|{api_key.organization_id}|valid"
    ghost = f"api_key|{api_key.key_id}|{api_key.organization_id}|expired"
    usage._unlisted.update({usage._series_key(minute, name): (minute, name) for name in (listed, ghost)})
    usage.flush()  # lists both again: one twice, one without a counter
    assert not usage._unlisted
    assert usage.minute_counts(minute) == {("api_key", api_key.key_id, api_key.organization_id, "valid"): 1}


def test_a_process_that_exits_lists_the_series_a_failed_flush_left_unlisted(
    redis_cache, make_key, monkeypatch
):
    """docs/usage.md: a process that exits flushes what it still holds, and a series whose listing
    failed is listed again by the process's next flush (no other flush would list it): the exit flush
    runs for an unlisted series even when no new count came meanwhile."""
    api_key, _ = make_key()
    when = _a_minute_ago_and_more()
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())
    for _ in range(4):
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    with monkeypatch.context() as m:
        # The counters are added; storing the slot names fails (fail soft: the keys not stored).
        m.setattr(ResilientRedisCache, "set_many", lambda self, data, *a, **k: list(data))
        usage.flush()
    assert usage._unlisted and not usage._counts, "precondition: only a series waits to be listed"
    usage._flush_at_exit()  # the worker stops gracefully (atexit)
    monkeypatch.undo()
    # The worker is gone: what it held dies with it. `rollup_usage` runs in another process (cron).
    usage._unlisted.clear()
    usage.rollup(now=when + timedelta(minutes=1))
    assert outcome_counts(api_key.key_id).get("valid", 0) == 4, (
        "the exit flush skipped the unlisted series: 4 uses stored in Redis are never rolled up"
    )


def test_counts_and_notes_held_when_a_back_off_starts_are_kept_for_the_next_flush(
    redis_cache, make_key, monkeypatch, settings
):
    """One failed cache call anywhere in the process (a slow GET on the hot path, say) starts a
    2-second back-off (portal.infra.cache.BACKOFF_SECONDS) in which ResilientRedisCache answers
    stand-ins without asking Redis. A flush in that window keeps what the process holds (counts
    recorded before, while Redis answered, and their insight notes), re-arms the idle flush, and
    is not tried again by every request meanwhile."""
    settings.PORTAL_USAGE_FLUSH_SECONDS = 5
    api_key, _ = make_key()
    when = _a_minute_ago_and_more()
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())
    for _ in range(5):  # Redis is healthy: five uses, held until the next flush
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid", ip=INSIDE)
    usage._idle.cancel()
    cache._failed("get", TimeoutError("one slow read elsewhere"))  # the process backs off for 2 s
    assert cache.is_down()
    usage.flush()  # the end of the next request: the flush is due, inside the back-off
    assert sum(usage._counts.values()) == 5 and recorder._ips, "kept for the next flush"
    assert usage._idle.timer is not None, "the idle flush is armed again"
    with monkeypatch.context() as m:
        m.setattr(usage, "flush", lambda: pytest.fail("flushed again by the next request"))
        usage._flush_if_due()  # a request right after: the next flush is an interval away
    cache._down_until = 0.0  # 2 s later: the back-off is over (Redis never went away)
    usage.flush()
    monkeypatch.undo()
    usage.rollup(now=when + timedelta(minutes=1))
    assert outcome_counts(api_key.key_id).get("valid", 0) == 5, (
        "the five uses were dropped by a flush that never reached Redis"
    )
    ips = dict(UsageClientIp.objects.filter(credential_id=api_key.key_id).values_list("ip", "count"))
    assert ips == {INSIDE: 5}, ips


def test_what_a_flush_keeps_through_a_long_back_off_is_bounded(redis_cache, make_key, monkeypatch):
    """Counts older than the roll-up's look-back are dropped (no roll-up would read them), then the
    oldest past `MAX_HELD_SERIES`; the notes keep at most `recorder.MAX_HELD_SERIES` credentials."""
    keys = [make_key(name=f"k{i}")[0] for i in range(3)]
    now = datetime.now(UTC).replace(second=10, microsecond=0)
    for age in (usage.ROLLUP_LOOKBACK_MINUTES + 1, 5, 4, 3, 2):  # minutes ago: the first is too old
        monkeypatch.setattr(usage.time, "time", lambda age=age: (now - timedelta(minutes=age)).timestamp())
        usage.record("api_key", keys[0].key_id, keys[0].organization_id, "valid", ip=INSIDE)
    for api_key in keys[1:]:
        usage.record("api_key", api_key.key_id, api_key.organization_id, "expired", ip=INSIDE)
    monkeypatch.setattr(usage.time, "time", lambda: now.timestamp())
    monkeypatch.setattr(ResilientRedisCache, "is_down", lambda self: True)  # a long outage
    usage.flush()
    minute = usage._minute()
    assert sorted({m - minute for m, *_rest in usage._counts}) == [-5, -4, -3, -2]
    assert len(usage._counts) == 6
    monkeypatch.setattr(usage, "MAX_HELD_SERIES", 3)
    monkeypatch.setattr(recorder, "MAX_HELD_SERIES", 2)
    usage.flush()  # still backing off
    assert set(usage._counts) == {
        (minute - 2, "api_key", keys[0].key_id, keys[0].organization_id, "valid"),
        *((minute - 2, "api_key", k.key_id, k.organization_id, "expired") for k in keys[1:]),
    }, sorted(usage._counts)
    # The notes of the credential noted first are dropped.
    assert set(recorder.take()) == {f"api_key|{k.key_id}|{k.organization_id}" for k in keys[1:]}


# --- 9. an outage that outlasts the back-off: what was never sent is never dropped -------------
# docs/usage.md: a flush that could reach nothing keeps the counts and notes for the next one; only
# counts sent without an answer are dropped (test_counts_flushed_after_an_incr_whose_reply_was_lost…).


@pytest.fixture
def stoppable_redis(settings, redis_server):
    """The default cache on a redis-server of the test's own, which the test stops and starts."""
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.infra.cache.ResilientRedisCache",
            "LOCATION": redis_server.url,
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    caches["default"].clear()
    return redis_server


def _client_ips(api_key) -> dict[str, int]:
    return dict(UsageClientIp.objects.filter(credential_id=api_key.key_id).values_list("ip", "count"))


def test_counts_held_through_an_outage_survive_a_flush_redis_refuses(
    stoppable_redis, make_key, monkeypatch, settings
):
    """Five uses kept through the back-off; when it ends Redis is still down, and the idle timer's
    flush is refused a connection: nothing was sent, so nothing may be dropped."""
    settings.PORTAL_USAGE_FLUSH_SECONDS = 5
    api_key, _ = make_key()
    when = _a_minute_ago_and_more()
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())
    for _ in range(5):
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid", ip=INSIDE)
    usage._idle.cancel()

    stoppable_redis.stop()  # the outage begins
    cache.get("anything")  # a request's read fails: the process backs off for 2 s
    assert cache.is_down()
    usage.flush()  # inside the back-off: kept
    assert sum(usage._counts.values()) == 5

    cache._down_until = 0.0  # the back-off is over; Redis is still down
    usage.flush()  # the idle timer's flush: connection refused
    assert sum(usage._counts.values()) == 5 and recorder._ips, "kept again for the next flush"
    assert usage._idle.timer is not None, "the idle flush is armed again"
    usage._idle.cancel()

    stoppable_redis.start()  # Redis is back
    cache._down_until = 0.0
    usage.record("api_key", api_key.key_id, api_key.organization_id, "valid", ip=INSIDE)
    usage.flush()
    monkeypatch.undo()
    usage.rollup(now=when + timedelta(minutes=1))
    assert outcome_counts(api_key.key_id).get("valid", 0) == 6, (
        "the five uses held through the outage were dropped by a flush that never reached Redis"
    )
    assert _client_ips(api_key) == {INSIDE: 6}


def test_the_first_flush_of_an_outage_keeps_what_it_never_sent(stoppable_redis, make_key, monkeypatch):
    """Redis goes down between two flushes. The flush sends the counters first: a failed insight
    write used to start the back-off under them, so they were answered by its stand-in and dropped."""
    api_key, _ = make_key()
    when = _a_minute_ago_and_more()
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())
    for _ in range(3):
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid", ip=INSIDE)
    usage._idle.cancel()
    stoppable_redis.stop()
    assert not cache.is_down()
    usage.flush()  # connection refused: nothing sent
    assert sum(usage._counts.values()) == 3 and recorder._ips
    usage._idle.cancel()

    stoppable_redis.start()
    cache._down_until = 0.0
    usage.record("api_key", api_key.key_id, api_key.organization_id, "valid", ip=INSIDE)
    usage.flush()
    monkeypatch.undo()
    usage.rollup(now=when + timedelta(minutes=1))
    assert outcome_counts(api_key.key_id).get("valid", 0) == 4
    assert _client_ips(api_key) == {INSIDE: 4}


def test_notes_are_kept_when_the_counts_fail_after_they_were_sent(redis_cache, make_key, monkeypatch):
    """The counts' reply is lost (Redis added them: not sent again); the notes, sent after the counts,
    were never sent: the next flush sends them."""
    api_key, _ = make_key()
    when = _a_minute_ago_and_more()
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())
    for _ in range(2):
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid", ip=INSIDE)
    real_scripted = ResilientRedisCache._scripted

    def reply_lost(self, source, keys, args_of):
        real_scripted(self, source, keys, args_of)
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    with monkeypatch.context() as m:
        m.setattr(ResilientRedisCache, "_scripted", reply_lost)
        usage.flush()
    assert not usage._counts and recorder._ips, "the counts are dropped, the notes kept"
    cache._down_until = 0.0
    usage.flush()
    monkeypatch.undo()
    usage.rollup(now=when + timedelta(minutes=1))
    assert outcome_counts(api_key.key_id).get("valid", 0) == 2
    assert _client_ips(api_key) == {INSIDE: 2}
