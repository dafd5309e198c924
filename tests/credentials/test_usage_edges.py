"""Usage metering and last use at their edges: an idle process, a listing that failed, refusals that
are no use, the global issuance limit, a Redis outage, a mapped client address."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from credentials import usage
from credentials.api_keys.models import ApiKey
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
