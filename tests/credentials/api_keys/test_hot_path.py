"""The hot path's side duties: last-used tracking at most once a minute, and surviving a broken cache."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from credentials.api_keys.services import api_key_revoke
from credentials.api_keys.verification import api_key_record_use, api_key_verify, cache_seconds

pytestmark = pytest.mark.django_db

WHOAMI = "/api/v1/whoami"


def test_last_used_is_written_once_a_minute(make_key, api_key_client, monkeypatch):
    api_key, plaintext = make_key()
    client = api_key_client(plaintext)
    assert client.get(WHOAMI, REMOTE_ADDR="198.51.100.7").status_code == 200
    api_key.refresh_from_db()
    first = api_key.last_used_at
    assert first is not None and api_key.last_used_ip == "198.51.100.7"
    assert client.get(WHOAMI, REMOTE_ADDR="198.51.100.8").status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at == first and api_key.last_used_ip == "198.51.100.7"
    # Once the minute has passed (the throttle entry is gone), the next use is written.
    cache.delete("credentials:api_key_used:v1:" + api_key.key_id)
    assert client.get(WHOAMI, REMOTE_ADDR="198.51.100.8").status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at > first and api_key.last_used_ip == "198.51.100.8"


def test_a_failing_last_used_write_never_fails_the_request(make_key, api_key_client, monkeypatch, caplog):
    from django.db import DatabaseError

    from credentials.api_keys import verification

    class BrokenManager:
        def filter(self, **kwargs):
            raise DatabaseError("database went away")

    _api_key, plaintext = make_key()
    assert api_key_verify(plaintext).valid  # warms the cache, so only the last-used write touches the DB
    monkeypatch.setattr(verification, "ApiKey", type("BrokenApiKey", (), {"objects": BrokenManager()}))
    response = api_key_client(plaintext).get(WHOAMI)
    assert response.status_code == 200
    assert response.json()["credential_type"] == "api_key"
    assert "Could not record the last use" in caplog.text


@override_settings(
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
)
def test_an_unreachable_cache_falls_back_to_the_database(make_key, api_key_client, caplog):
    api_key, plaintext = make_key()
    assert api_key_verify(plaintext).valid
    response = api_key_client(plaintext).get(WHOAMI)
    assert response.status_code == 200
    api_key_revoke(api_key=api_key, actor=api_key.owner, reason="test")
    assert api_key_verify(plaintext).code == "revoked"
    assert "cache unavailable" in caplog.text


def test_shared_cache_is_invalidated_by_revocation(redis_cache, make_key, owner, django_assert_num_queries):
    assert cache_seconds() > 1
    api_key, plaintext = make_key()
    assert api_key_verify(plaintext).valid
    with django_assert_num_queries(0):
        assert api_key_verify(plaintext).valid
    raw = cache.get("credentials:api_key:v1:" + api_key.key_id)
    assert raw["digest"] == api_key.digest and plaintext not in repr(raw)
    api_key_revoke(api_key=api_key, actor=owner, reason="leaked")
    assert api_key_verify(plaintext).code == "revoked"


def test_per_process_cache_entries_live_one_second():
    assert "locmem" in __import__("django.conf").conf.settings.CACHES["default"]["BACKEND"].lower()
    assert cache_seconds() == 1


def test_record_use_outside_a_request_writes_at_once(make_key):
    api_key, plaintext = make_key()
    api_key_record_use(api_key_verify(plaintext), ip="203.0.113.9")
    api_key.refresh_from_db()
    assert api_key.last_used_ip == "203.0.113.9"
    assert timezone.now() - api_key.last_used_at < timedelta(minutes=1)
