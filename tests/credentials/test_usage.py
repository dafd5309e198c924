"""Usage metering: counts per credential per minute by outcome, the roll-up, and the usage API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from credentials import usage
from credentials.api_keys import keys
from credentials.api_keys.services import api_key_revoke
from credentials.models import UsageBucket
from tests.support.usage import outcome_counts
from tests.tokens.conftest import request_token
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.django_db

INSIDE, OUTSIDE = "203.0.113.7", "198.51.100.9"


@pytest.fixture(autouse=True)
def _fresh_counters():
    usage._counts.clear()
    yield
    usage._counts.clear()


def whoami(key: str, ip: str = INSIDE):
    return Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)


counts = outcome_counts


def wrong_secret(api_key) -> str:
    return keys.generate(api_key.environment, key_id=api_key.key_id)[1]


@pytest.mark.usefixtures("rate_clock")
def test_every_outcome_of_an_api_key_is_counted_and_rolled_up(make_key, owner):
    api_key, key = make_key(allowed_ips=[INSIDE], rate_limit={"requests": 3, "per_seconds": 60})
    statuses = [whoami(key).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert whoami(key, OUTSIDE).status_code == 403
    for _ in range(2):
        assert whoami(wrong_secret(api_key)).status_code == 401
    assert UsageBucket.objects.count() == 0  # nothing is written per request
    usage.rollup()
    assert counts(api_key.key_id) == {"valid": 3, "rate_limited": 1, "ip_denied": 1, "invalid_secret": 2}
    assert counts(api_key.key_id, "hour") == counts(api_key.key_id, "day") == counts(api_key.key_id)
    api_key_revoke(api_key=api_key, actor=owner, reason="done")
    assert whoami(key).status_code == 401
    usage.rollup()
    usage.rollup()  # idempotent: totals, not increments
    assert counts(api_key.key_id)["revoked"] == 1 and counts(api_key.key_id)["valid"] == 3


def test_keys_verify_counts_the_verified_key(make_key):
    _, verifier = make_key(name="gateway", scopes=["api_keys:verify"])
    customer, key = make_key(name="customer")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {verifier}")
    for presented in (key, key, wrong_secret(customer)):
        client.post("/api/v1/keys/verify", {"key": presented}, "application/json")
    usage.rollup()
    assert counts(customer.key_id) == {"valid": 2, "invalid_secret": 1}


def test_m2m_token_issuance_is_counted(make_app):
    creds = make_app(name="svc", scopes=["orders:read"])
    assert request_token(Client(), creds).status_code == 200
    assert request_token(Client(), creds, secret="ips_wrong").status_code == 401
    assert request_token(Client(), creds, scope="orders:write").status_code == 400
    usage.rollup()
    assert counts(creds.client_id) == {"valid": 1, "invalid_secret": 1, "insufficient_scope": 1}


def test_the_roll_up_splits_at_minute_boundaries_and_sums_hours(make_key, monkeypatch):
    api_key, _ = make_key()
    edge = datetime(2026, 12, 6, 9, 59, 59, tzinfo=UTC)
    for offset, n in ((0, 2), (1, 3), (61, 1)):  # 09:59:59, 10:00:00, 10:01:00
        monkeypatch.setattr(usage.time, "time", lambda t=edge.timestamp() + offset: t)
        for _ in range(n):
            usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    usage.rollup(now=edge + timedelta(minutes=2))
    minutes = dict(
        UsageBucket.objects.filter(granularity="minute").order_by("start").values_list("start", "count")
    )
    assert minutes == {
        edge.replace(second=0): 2,
        edge.replace(hour=10, minute=0, second=0): 3,
        edge.replace(hour=10, minute=1, second=0): 1,
    }
    hours = dict(UsageBucket.objects.filter(granularity="hour").values_list("start", "count"))
    assert hours == {edge.replace(minute=0, second=0): 2, edge.replace(hour=10, minute=0, second=0): 4}
    assert dict(UsageBucket.objects.filter(granularity="day").values_list("start", "count")) == {
        edge.replace(hour=0, minute=0, second=0): 6
    }


def test_the_roll_up_splits_at_a_utc_day_boundary(make_key, monkeypatch):
    api_key, _ = make_key()
    midnight = datetime(2026, 12, 7, tzinfo=UTC)
    for offset, n in ((-30, 2), (30, 3)):  # 23:59:30 on the 6th, 00:00:30 on the 7th, each flushed
        monkeypatch.setattr(usage.time, "time", lambda t=midnight.timestamp() + offset: t)
        for _ in range(n):
            usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
        usage.flush()
    usage.rollup(now=midnight + timedelta(seconds=30))
    by_start = {
        granularity: dict(UsageBucket.objects.filter(granularity=granularity).values_list("start", "count"))
        for granularity in ("hour", "day")
    }
    assert by_start == {
        "hour": {midnight - timedelta(hours=1): 2, midnight: 3},
        "day": {midnight - timedelta(days=1): 2, midnight: 3},
    }


def test_retention_drops_old_buckets(make_key):
    api_key, _ = make_key()
    now = datetime.now(UTC)
    for granularity, keep in usage.RETENTION.items():
        for start in (now - keep - timedelta(hours=1), now - keep + timedelta(hours=1)):
            UsageBucket.objects.create(
                organization_id=api_key.organization_id,
                kind="api_key",
                credential_id=api_key.key_id,
                granularity=granularity,
                start=start,
                outcome="valid",
                count=1,
            )
    usage.rollup(now=now)
    assert UsageBucket.objects.count() == 3  # the newer of each pair


def test_under_debug_usage_is_rolled_up_in_process(make_key, settings):
    settings.DEBUG = True
    settings.PORTAL_USAGE_FLUSH_SECONDS = 0
    settings.PORTAL_USAGE_ROLLUP_SECONDS = 0
    api_key, key = make_key()
    assert whoami(key).status_code == 200
    assert counts(api_key.key_id) == {"valid": 1}


def test_a_process_that_exits_flushes_what_it_still_holds(make_key, settings, monkeypatch):
    settings.PORTAL_USAGE_FLUSH_SECONDS = 3600
    monkeypatch.setattr(usage, "_last_flush", [time.monotonic()])  # flushed just now
    api_key, key = make_key()
    assert whoami(key).status_code == 200
    assert usage._counts  # not due yet: still in the process
    usage._flush_at_exit()  # registered with atexit (a graceful stop of the server)
    assert not usage._counts
    assert (
        usage.minute_counts(usage._minute())[("api_key", api_key.key_id, api_key.organization_id, "valid")]
        == 1
    )


# --- the usage API --------------------------------------------------------------------------


def usage_url(*ids, **params):
    query = "&".join([*(f"credential={i}" for i in ids), *(f"{k}={v}" for k, v in params.items())])
    return f"/api/v1/orgs/acme/usage/?{query}"


def test_usage_api_reports_both_kinds_with_totals_and_buckets(owner_client, make_key, owner, scopes):
    api_key, key = make_key()
    app, _ = m2m_app_create(organization=api_key.organization, name="svc", owner=owner, actor=owner)
    whoami(key)
    whoami(key)
    whoami(wrong_secret(api_key))
    usage.rollup()
    response = owner_client.get(usage_url(api_key.key_id, app.client_id, granularity="minute"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["granularity"] == "minute" and body["outcomes"] == list(usage.OUTCOMES)
    first, second = body["credentials"]
    assert first["credential"] == api_key.key_id and first["kind"] == "api_key"
    assert first["totals"] == {**dict.fromkeys(usage.OUTCOMES, 0), "valid": 2, "invalid_secret": 1}
    assert len(first["buckets"]) == 1 and first["buckets"][0]["valid"] == 2
    assert second == {
        "credential": app.client_id,
        "kind": "m2m_app",
        "name": "svc",
        "totals": dict.fromkeys(usage.OUTCOMES, 0),
        "buckets": [],
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "credential"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"granularity": "minute", "since": "2000-01-01T00:00:00Z"}, "since"),
        ({"granularity": "week"}, "granularity"),
        ({"since": "yesterday"}, "since"),
        # No `since`: a day before `until`, which year 1 has not (clamped, then too old, not a 500).
        ({"until": "0001-01-01T00:00:00Z"}, "since"),
    ],
)
def test_usage_api_validation(owner_client, make_key, params, field):
    api_key, _ = make_key()
    ids = [] if field == "credential" else [api_key.key_id]
    response = owner_client.get(usage_url(*ids, **params))
    assert response.status_code == 400 and field in response.json(), response.content


def test_another_organisations_credential_is_a_field_error_never_data(
    owner_client, make_key, other_organization, outsider
):
    theirs, key = make_key(organization=other_organization, owner=outsider)
    whoami(key)
    usage.rollup()
    response = owner_client.get(usage_url(theirs.key_id))
    assert response.status_code == 400 and "credential" in response.json()
    assert theirs.key_id in str(response.json()) and "valid" not in str(response.json())
    assert owner_client.get(usage_url("nope")).status_code == 400


def test_another_organisations_usage_page_is_404(outsider_client, make_key):
    api_key, _ = make_key()
    assert outsider_client.get(usage_url(api_key.key_id)).status_code == 404


def test_credentials_need_usage_read(make_key, scopes):
    from tests.factories import ScopeFactory

    ScopeFactory(name="usage:read")
    target, _ = make_key()
    _, reader = make_key(name="reader", scopes=["usage:read"])
    _, other = make_key(name="other")
    ok = Client(HTTP_AUTHORIZATION=f"Bearer {reader}").get(usage_url(target.key_id))
    assert ok.status_code == 200
    refused = Client(HTTP_AUTHORIZATION=f"Bearer {other}").get(usage_url(target.key_id))
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"


def test_head_on_the_usage_api_answers_as_get_without_a_body(owner_client, make_key):
    """HEAD is GET without a body (RFC 9110 §9.3.2), JSON or CSV; it was a 500 (no authority action
    for "head"). The generic walk over every REST view: tests/security/test_authority_matrix.py."""
    api_key, _ = make_key()
    now = datetime.now(UTC).replace(microsecond=0)
    window = {"since": f"{now - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}", "until": f"{now:%Y-%m-%dT%H:%M:%SZ}"}
    for url in (usage_url(api_key.key_id, **window), usage_url(api_key.key_id, format="csv", **window)):
        get, head = owner_client.get(url), owner_client.head(url)
        assert head.status_code == get.status_code == 200, (url, head.status_code)
        assert head["Content-Type"] == get["Content-Type"]
        assert head.get("Content-Disposition") == get.get("Content-Disposition")
        assert head.content == b""


def test_head_on_the_usage_api_with_an_api_key_asks_usage_read(make_key, scopes):
    from tests.factories import ScopeFactory

    ScopeFactory(name="usage:read")
    target, _ = make_key(name="target")
    _, reader = make_key(name="reader", scopes=["usage:read"])
    _, other = make_key(name="other")
    assert Client(HTTP_AUTHORIZATION=f"Bearer {reader}").head(usage_url(target.key_id)).status_code == 200
    assert Client(HTTP_AUTHORIZATION=f"Bearer {other}").head(usage_url(target.key_id)).status_code == 403


def test_usage_api_query_count_does_not_grow_with_credentials(
    owner_client, make_key, django_assert_max_num_queries
):
    made = [make_key(name=f"k{i}") for i in range(12)]
    for _, key in made:
        whoami(key)
    usage.rollup()
    with django_assert_max_num_queries(12) as one:
        assert owner_client.get(usage_url(made[0][0].key_id)).status_code == 200
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = owner_client.get(usage_url(*(k.key_id for k, _ in made)))
    assert response.status_code == 200 and len(response.json()["credentials"]) == 12


def test_the_credential_page_shows_the_usage_table(owner_client, make_key):
    from django.urls import reverse

    api_key, key = make_key()
    page = reverse("org-api-key-detail", args=["acme", api_key.key_id])
    assert "No recorded use in the last 24 hours" in owner_client.get(page).content.decode()
    for _ in range(3):
        whoami(key)
    whoami(wrong_secret(api_key))
    usage.rollup()
    html = owner_client.get(page).content.decode()
    assert "Usage, last 24 hours" in html and '<th scope="col">Invalid secret</th>' in html
    assert '<th scope="col">IP denied</th>' in html  # an acronym, not "Ip denied"
    assert '<tfoot><tr><th scope="row">Total</th><td>3</td><td>1</td>' in html
    assert 'role="img"' in html and "3 valid, 1 refused" in html  # the current hour's bar


def test_rollup_usage_command(make_key):
    from io import StringIO

    from django.core.management import call_command

    api_key, key = make_key()
    whoami(key)
    out = StringIO()
    call_command("rollup_usage", stdout=out)
    assert "Rolled up 1 minute buckets." in out.getvalue()
    assert counts(api_key.key_id) == {"valid": 1}


def bucket(ref: str, granularity: str) -> int:
    return sum(
        UsageBucket.objects.filter(credential_id=ref, granularity=granularity).values_list("count", flat=True)
    )


# --- counts customers have seen never go down ----------------------------------------------------
# operations.md allows allkeys-lru eviction: a minute's counter may go while its listing stays.


def test_an_evicted_counter_does_not_overwrite_the_stored_minute_with_zero(make_key, monkeypatch):
    api_key, _ = make_key()
    when = datetime.now(UTC).replace(second=10, microsecond=0) - timedelta(minutes=5)
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())
    for _ in range(5):
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    usage.flush()
    monkeypatch.undo()
    usage.rollup()
    assert bucket(api_key.key_id, "minute") == bucket(api_key.key_id, "hour") == 5

    # The cache evicts the minute's counter (its listing stays): the count is no longer in the cache.
    minute = usage._minute(when.timestamp())
    series = f"api_key|{api_key.key_id}|{api_key.organization_id}|valid"
    assert cache.get(usage._series_key(minute, series)) == 5
    cache.delete(usage._series_key(minute, series))

    usage.rollup()  # the next minute's roll-up
    # What was stored stays: 5 uses happened, and the API, the page and the CSVs showed 5.
    assert bucket(api_key.key_id, "minute") == 5
    assert bucket(api_key.key_id, "hour") == 5
    assert bucket(api_key.key_id, "day") == 5


def test_a_failed_cache_read_during_a_roll_up_does_not_zero_the_stored_minute(make_key, monkeypatch):
    # ResilientRedisCache answers a read that timed out as a miss ({}), not an error.
    api_key, _ = make_key()
    for _ in range(3):
        usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")
    usage.rollup()
    assert bucket(api_key.key_id, "minute") == bucket(api_key.key_id, "day") == 3

    real_get_many = cache.get_many

    def counters_time_out(keys, *args, **kwargs):
        keys = list(keys)
        if keys and all(key.startswith("usage:v1:c:") for key in keys):
            return {}  # what ResilientRedisCache._call answers when Redis fails (and for 2 s after)
        return real_get_many(keys, *args, **kwargs)

    monkeypatch.setattr(cache, "get_many", counters_time_out)
    usage.rollup()
    assert bucket(api_key.key_id, "minute") == 3
    assert bucket(api_key.key_id, "day") == 3


def test_a_redis_restart_costs_what_the_docs_say(redis_cache, make_key, monkeypatch, settings):
    """operations.md and usage.md: a Redis that loses its data loses the counts not yet rolled up, and
    a minute already rolled up keeps the larger of its stored count and the count started again."""
    api_key, _ = make_key()
    when = datetime.now(UTC).replace(second=10, microsecond=0)
    monkeypatch.setattr(usage.time, "time", lambda: when.timestamp())

    def uses(n: int) -> None:
        for _ in range(n):
            usage.record("api_key", api_key.key_id, api_key.organization_id, "valid")

    uses(5)
    usage.rollup(now=when)
    uses(2)
    usage.flush()  # in Redis, not yet rolled up
    cache.clear()  # Redis restarts (it keeps nothing on disk)
    uses(3)  # the same minute
    usage.rollup(now=when)
    assert bucket(api_key.key_id, "minute") == bucket(api_key.key_id, "day") == 5  # never lowered
    uses(4)
    usage.rollup(now=when)
    assert bucket(api_key.key_id, "minute") == bucket(api_key.key_id, "day") == 7  # past the stored 5

    operations = (Path(settings.BASE_DIR) / "docs" / "operations.md").read_text()
    redis_row = next(line for line in operations.splitlines() if line.startswith("| **Redis** |"))
    assert "Nothing is lost" not in redis_row
    assert "usage counts" in redis_row and "not yet rolled up" in redis_row
