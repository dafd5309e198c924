"""Hostile client assertions: whatever a JWT's header and claims hold, the answer is 401, never a 500.

JSON lets an assertion carry what no client id or NumericDate can be: lone surrogates
(`"\\ud800"`, which no UTF-8 encoder accepts), integers beyond any float, line breaks.
Unsigned ones reach the rate limiter and the log (the claimed `sub`); signed ones (a client
holding its key) reach the lifetime checks and the replay cache.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.tokens.protocol import test_private_key_jwt as keyed
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE, authenticate_assertion

TOKEN_URL = settings.PORTAL_ISSUER + "/oauth/token"
ENDPOINTS = ["/oauth/token", "/oauth/introspect", "/oauth/revoke"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_assertion(payload_json: str, *, private_key=None, header: str = '{"alg":"RS256"}') -> str:
    """Return a compact JWS of exactly this JSON text, signed with `private_key` (or a junk signature)."""
    signing_input = f"{_b64(header.encode())}.{_b64(payload_json.encode())}"
    if private_key is None:
        return signing_input + ".c2ln"
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def claims_json(client_id: str, **overrides: str) -> str:
    """Return the claims of a valid assertion as JSON text, with some values replaced by raw JSON."""
    now = int(time.time())
    values = {
        "iss": json.dumps(client_id),
        "sub": json.dumps(client_id),
        "aud": json.dumps(TOKEN_URL),
        "iat": str(now),
        "exp": str(now + 60),
        "jti": json.dumps(os.urandom(8).hex()),
    }
    values.update(overrides)
    return "{" + ",".join(f'"{name}":{value}' for name, value in values.items()) + "}"


def post(client, endpoint: str, assertion: str):
    return client.post(
        endpoint,
        {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": assertion,
            "token": "x",
        },
    )


@pytest.fixture
def no_limits(settings):
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 0
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_unsigned_sub_with_a_lone_surrogate_is_refused_not_500(client, pk_app, no_limits, endpoint):
    # No key needed: the claimed sub used to reach the rate limiter's key and the database.
    assertion = raw_assertion(claims_json(pk_app.client_id, sub='"\\ud800"', iss='"\\ud800"'))
    keyed.assert_invalid_client(post(client, endpoint, assertion))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": "1" + "0" * 400},  # beyond any float
        {"iat": "-1" + "0" * 400},
        {"exp": "1e400"},
        {"iat": "-1e400"},
        {"exp": "NaN"},
        {"exp": "Infinity"},
        {"iat": "NaN"},
        {"iat": "-Infinity"},
        {"jti": '"\\ud800"'},  # the replay cache hashes the jti
        {"iat": "true"},
    ],
    ids=lambda overrides: next(iter(overrides)) + "=" + next(iter(overrides.values()))[:12],
)
def test_signed_claims_out_of_range_are_refused_not_500(
    client,
    pk_app,
    rsa_key,
    no_limits,
    endpoint,
    overrides,
):
    assertion = raw_assertion(claims_json(pk_app.client_id, **overrides), private_key=rsa_key)
    keyed.assert_invalid_client(post(client, endpoint, assertion))


def test_the_signed_helper_makes_assertions_that_pass(client, pk_app, rsa_key):
    # So the refusals above are about the odd values, not about how the assertions are built.
    assertion = raw_assertion(claims_json(pk_app.client_id), private_key=rsa_key)
    assert post(client, "/oauth/token", assertion).status_code == 200


def test_a_claimed_sub_with_a_line_break_cannot_forge_a_log_line(client, pk_app, no_limits, caplog):
    forged = "m2m_x\n2026-11-28 05:00:00 INFO tokens.protocol.assertions client assertion accepted"
    assertion = raw_assertion(
        json.dumps({"iss": forged, "sub": forged, "aud": TOKEN_URL, "exp": int(time.time()) + 60, "jti": "j"})
    )
    with caplog.at_level(logging.INFO, logger="tokens.protocol.assertions"):
        keyed.assert_invalid_client(post(client, "/oauth/token", assertion))
    lines = [r.getMessage() for r in caplog.records if r.name == "tokens.protocol.assertions"]
    assert lines == ["client assertion refused: no usable sub (claimed client -)"]


edge_values = st.sampled_from(
    [
        10**400,
        -(10**400),
        float("nan"),
        float("inf"),
        -1.0e308,
        True,
        "\ud800",
        "m2m_\n",
        "",
        TOKEN_URL,
        "none",
    ]
)
json_values = st.one_of(
    edge_values,
    st.none(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.one_of(edge_values, st.text(max_size=5)), max_size=2),
)
CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"]


@pytest.mark.parametrize("claim", CLAIMS)
@hypothesis_settings(
    max_examples=int(os.environ.get("FUZZ_PROTOCOL_EXAMPLES", "25")),
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(value=json_values, kid=st.one_of(st.none(), edge_values, st.text(max_size=10)), drop=st.booleans())
def test_any_signed_claim_value_authenticates_or_is_refused_never_raises(
    pk_app, rsa_key, claim, value, kid, drop
):
    now = int(time.time())
    claims = {
        "iss": pk_app.client_id,
        "sub": pk_app.client_id,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 60,
        "jti": os.urandom(8).hex(),
    }
    if drop:
        claims.pop(claim, None)
    else:
        claims[claim] = value
    # json.dumps writes a lone surrogate as a \ud800 escape and NaN as NaN: what a hostile client can.
    header = {"alg": "RS256"} if kid is None else {"alg": "RS256", "kid": kid}
    assertion = raw_assertion(json.dumps(claims), private_key=rsa_key, header=json.dumps(header))
    result = authenticate_assertion(assertion, endpoint="oauth-token")
    assert result is None or result[0] == pk_app
