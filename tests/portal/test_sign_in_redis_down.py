"""Sign-in while Redis is down (docs/operations.md, "What happens when a component fails").

allauth's rate limits lock each count with `cache.add`, which ResilientRedisCache answers with
False while Redis is down: every sign-in was refused with 429 after a one-second wait.
portal.apps wraps allauth's `cache_lock` so its limits fail open while the cache says it is down.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

DEAD_REDIS = {
    "default": {
        "BACKEND": "portal.infra.cache.ResilientRedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}


def _sign_in(email: str, password: str, ip: str = "198.51.100.7"):
    return Client(REMOTE_ADDR=ip).post(reverse("login"), {"login": email, "password": password})


def test_sign_in_keeps_working_while_redis_is_down(owner, settings):
    """A Redis that is down, at start-up or later, must not turn every sign-in into a 429."""
    settings.CACHES = DEAD_REDIS
    assert _sign_in(owner.email, PASSWORD).status_code == 302
    # The back-off has started: the next sign-ins do not wait for a lock either.
    assert _sign_in(owner.email, "wrong-guess-123").status_code == 200
    assert _sign_in(owner.email, PASSWORD).status_code == 302


def test_with_redis_up_failed_sign_ins_still_lock_the_account(owner, settings, redis_cache):
    # A distributed guesser: each attempt from another address, so only the per-account count bites.
    for n in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        assert _sign_in(owner.email, "wrong-guess-123", f"198.51.100.{n + 1}").status_code == 200
    assert _sign_in(owner.email, PASSWORD, "198.51.100.50").status_code == 429
