"""A federated token's replay entry lives while the token can be accepted (its expiry or, sooner,
the trust's max_token_age after iat), never longer: its own exp, however far, sets no lifetime,
and one Redis refuses (a huge exp) takes no cache down for the other tenants
(`ResilientRedisCache` backs off on outages, not on one refused command)."""

from __future__ import annotations

import json
import secrets
import time

import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.cache import caches

from tests.conftest import TEST_REDIS_URL
from tests.support.pem import public_pem
from tokens.clients.services import m2m_app_create
from tokens.federation.services import federated_identity_create
from tokens.models import M2MApplication
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE

AUD = settings.PORTAL_ISSUER
SUBJECT = "repo:acme/api:ref:refs/heads/main"


@pytest.fixture
def trust(app, oidc_issuer):
    identity, _ = federated_identity_create(
        application=app.application, actor=None, issuer=oidc_issuer.url, subject=SUBJECT, max_token_age=600
    )
    return identity


def _present(client, client_id, token):
    return client.post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": token,
        },
    )


def _replay_ttls() -> list[int]:
    r = redis.Redis.from_url(TEST_REDIS_URL)
    return [r.ttl(key) for key in r.scan_iter("*tokens:federation-jti:*")]


def test_replay_entry_lives_no_longer_than_the_token_is_acceptable(
    client, app, trust, oidc_issuer, redis_cache
):
    now = int(time.time())
    token = oidc_issuer.token({"sub": SUBJECT, "aud": AUD, "iat": now, "exp": now + 10 * 365 * 86400})
    assert _present(client, app.client_id, token).status_code == 200
    # The token stops being acceptable at iat + max_token_age + 30 s (token age check).
    assert _replay_ttls() and max(_replay_ttls()) <= 600 + 30 + 5, _replay_ttls()


@pytest.mark.parametrize("hostile_exp", ["control", "huge"])
def test_a_huge_exp_does_not_take_the_shared_cache_down_for_other_tenants(
    client, app, trust, oidc_issuer, redis_cache, other_organization, outsider, scopes, hostile_exp
):
    # Another organisation's private_key_jwt application served by the same worker.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other, _ = m2m_app_create(
        organization=other_organization,
        name="Globex keyed",
        owner=outsider,
        actor=outsider,
        scopes=["orders:read"],
        auth_method=M2MApplication.AuthMethod.PRIVATE_KEY_JWT,
        public_key=public_pem(key),
    )
    now = int(time.time())
    exp = now + 300 if hostile_exp == "control" else 10**16  # the control passes today
    hostile = oidc_issuer.token({"sub": SUBJECT, "aud": AUD, "iat": now, "exp": exp})
    _present(client, app.client_id, hostile)  # whatever it answers itself

    assertion = jwt.encode(
        {
            "iss": other.client_id,
            "sub": other.client_id,
            "aud": AUD,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        },
        key,
        algorithm="RS256",
    )
    response = client.post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    # Refused (401): the hostile token's `SET … EX 10**16` failed and put this worker's Redis in
    # back-off, where `add` answers False, so the replay check fails closed for everybody.
    assert response.status_code == 200, (json.loads(response.content), caches["default"].is_down())


def test_one_command_redis_refuses_is_no_outage(redis_cache):
    """An expiry Redis refuses fails that one call, without the back-off an outage starts."""
    cache = caches["default"]
    assert cache.add("refused-expiry", 1, timeout=10**16) is False
    assert not cache.is_down()
    assert cache.add("next-call", 1, timeout=60) is True
