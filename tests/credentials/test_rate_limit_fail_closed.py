"""`PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN=false` holds with the production cache: when Redis is
down, `portal.infra.cache.ResilientRedisCache` answers stand-ins (`add`: False, `incr`: the
delta) and backs off, and `ratelimit.count` reads that as no count, so a credential's limit
answers 429 (docs/api-keys.md, docs/configuration.md) instead of counting every request as the
first; the answer names the policy but claims no remaining budget."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import Client

from tests.tokens.conftest import request_token

pytestmark = pytest.mark.django_db

INSIDE = "203.0.113.7"


@pytest.fixture
def redis_down(settings):
    # The production backend, pointed at a port nothing listens on: every call fails (softly).
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.infra.cache.ResilientRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "KEY_PREFIX": "scratch-runtime-down",
        }
    }
    settings.PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN = False
    yield
    caches["default"].close()


def test_an_api_key_fails_closed_when_redis_is_down(make_key, redis_down):
    _, key = make_key(rate_limit={"requests": 5, "per_seconds": 60})
    response = Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=INSIDE)
    assert response.status_code == 429, (response.status_code, response.get("RateLimit"))
    assert response.json()["code"] == "rate_limited"
    assert "RateLimit" not in response and response["RateLimit-Policy"] == '"default";q=5;w=60'


def test_an_application_fails_closed_when_redis_is_down(make_app, redis_down):
    creds = make_app(rate_limit={"requests": 5, "per_seconds": 60})
    response = request_token(Client(REMOTE_ADDR=INSIDE), creds)
    assert response.status_code == 429, (response.status_code, response.get("RateLimit"))
    assert response.json()["error"] == "slow_down"
