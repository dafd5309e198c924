"""The jti replay cache through Redis: shared between app servers, and closed when Redis is down."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from portal.infra.cache import ResilientRedisCache
from tests.tokens.protocol.test_private_key_jwt import assert_invalid_client, make_assertion, post_token
from tokens.protocol import assertions

pytestmark = pytest.mark.django_db


def test_a_replay_on_another_app_server_is_refused(client, pk_app, rsa_key, redis_cache, monkeypatch):  # noqa: F811
    assertion = make_assertion(rsa_key, pk_app.client_id)
    assert post_token(client, assertion).status_code == 200
    # Another app server: its own connection to the same Redis, nothing shared in memory.
    other_server = caches.create_connection("default")
    assert other_server is not caches["default"] and isinstance(other_server, ResilientRedisCache)
    monkeypatch.setattr(assertions, "cache", other_server)
    assert_invalid_client(post_token(client, assertion))
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200


def test_assertions_are_refused_while_redis_is_down(client, pk_app, rsa_key, settings, caplog):  # noqa: F811
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.infra.cache.ResilientRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    # Fail closed: without the replay cache a captured assertion could be replayed.
    with caplog.at_level("INFO", logger="tokens.protocol.assertions"):
        assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id)))
    assert "replay cache is unavailable" in caplog.text
