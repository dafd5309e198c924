"""Federated tokens while Redis is down: discovery-based trusts keep working (docs/operations.md).

What was wrong: the refresh guard of an issuer's keys is a `cache.add`, and the cache answers
False to every `add` while Redis is down; with no keys cached either, every token of a
discovery-based trust was refused ("fetched moments ago"). docs/operations.md says everything
keeps working from PostgreSQL, and docs/m2m.md makes only a token *with a jti* fail closed. Now
each process keeps its own guard and copy of the keys meanwhile (tokens.federation.process_keys).
"""

from __future__ import annotations

import jwt
import pytest
from django.core.cache import caches

from tests.support.oidc_issuer import LocalIssuer
from tests.tokens.federation.test_federation import AUD, add_trust, assert_invalid_client, claims_of, present
from tokens.federation import process_keys
from tokens.federation import trust as federation

pytestmark = pytest.mark.usefixtures("local_issuers")

SUBJECT = "system:serviceaccount:payments:api"


@pytest.fixture
def issuer():
    with LocalIssuer() as running:
        yield running
        process_keys.forget(federation._issuer_digest(running.url))


@pytest.fixture
def trust(app, issuer):
    return add_trust(app.application, issuer.url, SUBJECT)


@pytest.fixture
def redis_down(settings, trust):
    """The production cache backend, pointed at a port nothing listens on (an outage)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.infra.cache.ResilientRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "KEY_PREFIX": "federation-redis-down",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    yield caches["default"]
    caches["default"].close()


def _token(issuer, **claims) -> str:
    return issuer.token({"sub": SUBJECT, "aud": AUD, "jti": None, **claims})


def test_a_token_without_jti_of_a_discovery_trust_works_while_redis_is_down(client, app, issuer, redis_down):
    assert claims_of(present(client, app.client_id, _token(issuer)))
    assert redis_down.is_down()
    # The keys this process fetched serve the next tokens: no fetch per request.
    assert claims_of(present(client, app.client_id, _token(issuer)))
    assert issuer.fetches() == 2  # discovery, then the JWKS


def test_a_token_with_a_jti_still_fails_closed_while_redis_is_down(client, app, issuer, redis_down):
    token = issuer.token({"sub": SUBJECT, "aud": AUD})  # with a jti: its replay check needs Redis
    assert_invalid_client(present(client, app.client_id, token))


def test_unknown_kids_refresh_at_most_once_per_interval_while_redis_is_down(
    client, app, issuer, redis_down, settings
):
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 1000
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 1000
    assert claims_of(present(client, app.client_id, _token(issuer)))
    assert issuer.fetches() == 2
    for n in range(10):
        forged = jwt.encode(
            {"iss": issuer.url, "sub": SUBJECT, "aud": AUD, "exp": 9999999999},
            issuer.key,
            algorithm="RS256",
            headers={"kid": f"attacker-{n}"},
        )
        assert_invalid_client(present(client, app.client_id, forged))
    assert issuer.fetches() == 4  # one refresh for ten unknown kids
    assert claims_of(present(client, app.client_id, _token(issuer)))  # the held keys still serve
    assert issuer.fetches() == 4


def test_an_issuer_that_is_down_is_not_asked_again_within_the_interval_while_redis_is_down(
    client, app, issuer, redis_down
):
    issuer.jwks_override = b"<html>502 Bad Gateway</html>"
    for _ in range(5):
        assert_invalid_client(present(client, app.client_id, _token(issuer)))
    assert issuer.fetches() == 2  # one try (discovery + JWKS), then refused without fetching


def test_a_process_holds_the_keys_and_guards_of_a_bounded_number_of_issuers(monkeypatch):
    monkeypatch.setattr(process_keys, "MAX_ISSUERS", 2)
    digests = [f"test-bounded-{n}" for n in range(3)]
    try:
        for digest in digests:
            process_keys.remember(digest, [{"kid": digest}])
            assert process_keys.take_guard(digest, 60)
        assert process_keys.keys(digests[0], 3600) is None  # the oldest made room
        assert process_keys.keys(digests[2], 3600) == [{"kid": digests[2]}]
        assert process_keys.take_guard(digests[0], 60)  # its guard went too
        assert not process_keys.take_guard(digests[2], 60)
    finally:
        for digest in digests:
            process_keys.forget(digest)
