"""Start-up validation of values (docs/configuration.md): URLs, lists, numbers and their ranges.

Each case loads the real settings module in a fresh process with DEBUG off, as production does.
"""

from __future__ import annotations

import ast

import pytest

from tests.portal.test_settings import STRONG, _manage

PRODUCTION = {**STRONG, "DEBUG": "0"}


def _show(expr: str, **env: str) -> str:
    """Return repr(`expr`) evaluated with settings loaded from `env` (a fresh process)."""
    code = f"import django; django.setup(); from django.conf import settings; print(repr({expr}))"
    result = _manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _last_error_line(**env: str) -> str:
    result = _manage("check", **env)
    assert result.returncode != 0, result.stdout
    return result.stderr.strip().splitlines()[-1]


# --- REDIS_URL --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["localhost:6379", "http://127.0.0.1:6379/0", "redis//127.0.0.1:6379/0", "redis://", "unix://"]
)
def test_a_malformed_redis_url_stops_start_up(url):
    """A REDIS_URL Redis cannot connect to was accepted: every cache call failed, and the portal ran
    as if Redis were down for good (no shared throttles, no replay cache)."""
    assert "REDIS_URL" in _last_error_line(**{**PRODUCTION, "REDIS_URL": url})


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://:secret@redis.internal:6380/1",
        "unix:///run/redis/redis.sock?db=2",
        "redis://10.0.0.22:6379/0,redis://10.0.0.23:6379/0",  # a primary, then a replica
    ],
)
def test_a_well_formed_redis_url_is_accepted(url):
    assert _show("settings.CACHES['default']['LOCATION']", **{**PRODUCTION, "REDIS_URL": url}) == repr(url)


# --- Lists ------------------------------------------------------------------------------------


def test_an_allowed_host_after_comma_space_is_served():
    """django-environ keeps the blank after a comma: `a, b` allowed `a` and ` b`, never `b`."""
    env = {**PRODUCTION, "ALLOWED_HOSTS": "portal.example.com, 10.0.0.11"}
    validated = (
        "__import__('django.http.request', fromlist=['x']).validate_host('10.0.0.11', settings.ALLOWED_HOSTS)"
    )
    assert _show(validated, **env) == "True"


def test_a_metrics_address_after_comma_space_is_honoured():
    """`check` said "no issues" (portal.E021 strips each entry itself) while 10.0.0.31 got 403."""
    env = {**PRODUCTION, "PORTAL_METRICS_ALLOWED_IPS": "10.0.0.30, 10.0.0.31"}
    allowed = "__import__('portal.infra.metrics', fromlist=['_ip_allowed'])._ip_allowed('10.0.0.31')"
    assert _show(allowed, **env) == "True"


def test_every_list_drops_blanks_and_empty_items():
    env = {
        **PRODUCTION,
        "CSRF_TRUSTED_ORIGINS": " https://a.example ,, https://b.example ",
        "PORTAL_TRUSTED_PROXIES": "10.0.0.10, 10.0.0.11,",
    }
    shown = _show("(settings.CSRF_TRUSTED_ORIGINS, settings.PORTAL_TRUSTED_PROXIES)", **env)
    assert shown == repr((["https://a.example", "https://b.example"], ["10.0.0.10", "10.0.0.11"]))


# --- Malformed values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "not-a-url"),
        ("DATABASE_URL", "http://db.internal/portal"),
        ("PORTAL_SESSION_IDLE_SECONDS", "1h"),
        ("PORTAL_WEBHOOK_MAX_ATTEMPTS", "12.5"),
        ("PORTAL_API_KEY_MEMO_SECONDS", "0.25s"),
        ("PORTAL_API_KEY_MEMO_SECONDS", "nan"),
        ("PORTAL_LOG_LEVEL", "verbose"),
    ],
)
def test_a_malformed_value_stops_start_up_naming_the_variable(name, value):
    """These crashed with a bare KeyError ('ENGINE') or ValueError that did not name the variable."""
    assert name in _last_error_line(**{**PRODUCTION, name: value})


def test_a_blank_database_url_is_the_documented_default():
    """Set but blank (as one writes in an env file) is unset: the documented SQLite default, not a
    KeyError 'ENGINE'."""
    engine = _show("settings.DATABASES['default']['ENGINE']", **{**PRODUCTION, "DATABASE_URL": ""})
    assert engine == repr("django.db.backends.sqlite3")


def test_numbers_are_read_as_written():
    """django-environ read `1e9` as 19 and refused `1e-3`; a blank number takes its default."""
    env = {
        **PRODUCTION,
        "PORTAL_USAGE_FLUSH_SECONDS": "1e9",
        "PORTAL_API_KEY_MEMO_SECONDS": "1e-3",
        "PORTAL_WEBHOOK_TIMEOUT_SECONDS": "",
        "PORTAL_LOG_LEVEL": "warning",
    }
    shown = _show(
        "(settings.PORTAL_USAGE_FLUSH_SECONDS, settings.PORTAL_API_KEY_MEMO_SECONDS, "
        "settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS, settings.LOG_LEVEL)",
        **env,
    )
    assert shown == repr((1e9, 0.001, 5, "WARNING"))


# --- Ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORTAL_HSTS_SECONDS", "-1"),  # Strict-Transport-Security: max-age=-1 (ignored by browsers)
        ("PORTAL_SESSION_IDLE_SECONDS", "0"),  # every session ended on its next request
        ("PORTAL_WEBHOOK_TIMEOUT_SECONDS", "0"),
        ("PORTAL_FEDERATION_TIMEOUT_SECONDS", "0"),
        ("PORTAL_SIGNING_KEY_REFRESH_SECONDS", "-5"),
        ("PORTAL_INVITATION_TTL_HOURS", "0"),  # every invitation was born expired
        ("PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT", "0"),  # nobody could sign in
        ("PORTAL_EXCHANGE_TOKEN_LIFETIME_SECONDS", "86401"),
        ("PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE", "-1"),
    ],
)
def test_a_value_out_of_range_stops_start_up(name, value):
    """Out-of-range numbers were taken as given."""
    assert name in _last_error_line(**{**PRODUCTION, name: value})


def test_zero_works_where_the_docs_say_what_it_does():
    names = [
        "PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE",
        "PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE",
        "PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE",
        "PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE",
        "PORTAL_SECRET_SCANNING_FAILURES_PER_IP_PER_MINUTE",
        "PORTAL_API_KEY_MEMO_SECONDS",
        "PORTAL_USAGE_FLUSH_SECONDS",
        "PORTAL_USAGE_ROLLUP_SECONDS",
        "PORTAL_LAST_USED_FLUSH_SECONDS",
    ]
    env = {
        **PRODUCTION,
        "PORTAL_DB_CONN_MAX_AGE": "0",
        "PORTAL_HSTS_SECONDS": "0",
        **dict.fromkeys(names, "0"),
    }
    shown = _show(
        f"[getattr(settings, n) for n in {names!r}] "
        "+ [settings.DATABASES['default']['CONN_MAX_AGE'], settings.SECURE_HSTS_SECONDS]",
        **env,
    )
    assert ast.literal_eval(shown) == [0] * (len(names) + 2)
