"""tokens.verifier while the portal's JWKS is failing (the portal down, a 503 from its proxy).

docs/validating-tokens.md: an unknown `kid` triggers at most one refetch per `refetch_cooldown`,
so a flood of forged kids cannot hammer the portal. A failed fetch used to be forgotten: every
`verify()` during an outage fetched the JWKS again, one request to the struggling portal per
token, each waiting up to `timeout`; and once the set was 5 minutes old, tokens signed by a key
known moments before were refused. Now a failed fetch waits a cooldown, and the last set
fetched keeps answering for `jwks_stale_if_error` past its lifespan.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.servers import JWKSServer
from tokens.signing.keys import public_jwk_for
from tokens.verifier import InvalidToken, TokenVerifier

ISSUER = "https://portal.example.test"
AUDIENCE = "https://api.example.test"


def _publish(jwks: JWKSServer):
    """Publish a new key; return a function that signs a token with it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = public_jwk_for(key.public_key(), "RS256")
    jwks.jwks["keys"].append(jwk)
    return lambda: _token(key, jwk["kid"])


def _token(key, kid: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER, "sub": "m", "client_id": "m", "aud": AUDIENCE, "iat": now, "exp": now + 60,
        "jti": "j", "scope": "",
    }  # fmt: skip
    return jwt.encode(claims, key, algorithm="RS256", headers={"typ": "at+jwt", "kid": kid})


@pytest.fixture
def clock(monkeypatch):
    """The verifier's monotonic clock, moved by the test (no sleeping, no timing windows)."""
    now = [1000.0]
    monkeypatch.setattr("tokens.verifier.time", SimpleNamespace(time=time.time, monotonic=lambda: now[0]))

    def advance(seconds: float) -> None:
        now[0] += seconds

    return advance


@pytest.fixture
def jwks():
    with JWKSServer({"keys": []}) as server:
        yield server


def _verifier(jwks: JWKSServer, **options) -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks.url, **options)


def test_forged_kids_during_an_outage_fetch_the_jwks_once_per_cooldown(jwks):
    jwks.up = False
    verifier = _verifier(jwks, refetch_cooldown=30, timeout=2)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for n in range(20):
        with pytest.raises(InvalidToken):
            verifier.verify(_token(forger, f"forged-{n}"))
    assert jwks.fetches == 1, f"{jwks.fetches} JWKS requests for 20 verifications within one cooldown"


def test_forged_kids_with_the_portal_up_fetch_once_per_cooldown(jwks):
    sign = _publish(jwks)
    verifier = _verifier(jwks, refetch_cooldown=30)
    assert verifier.verify(sign()).client_id == "m"
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for n in range(20):
        with pytest.raises(InvalidToken):
            verifier.verify(_token(forger, f"forged-{n}"))
    assert jwks.fetches == 2  # the routine fetch, one refetch for an unknown kid


def test_a_known_key_keeps_verifying_past_the_cache_lifespan_while_the_jwks_fails(jwks, clock):
    sign = _publish(jwks)
    verifier = _verifier(jwks, jwks_cache_seconds=300, refetch_cooldown=30)
    assert verifier.verify(sign()).client_id == "m"
    jwks.up = False
    clock(301)  # the set is past its lifespan: the next verification tries a routine fetch
    assert verifier.verify(sign()).client_id == "m"
    assert verifier.verify(sign()).client_id == "m"
    assert jwks.fetches == 2  # one failed routine fetch, then nothing within the cooldown


def test_the_stale_set_has_a_limit(jwks, clock):
    sign = _publish(jwks)
    verifier = _verifier(jwks, jwks_cache_seconds=300, refetch_cooldown=30, jwks_stale_if_error=3600)
    assert verifier.verify(sign()).client_id == "m"
    jwks.up = False
    clock(300 + 3500)
    assert verifier.verify(sign()).client_id == "m"  # within the stale allowance
    clock(101)  # past lifespan + stale_if_error
    with pytest.raises(InvalidToken, match="unknown kid"):
        verifier.verify(sign())


def test_after_the_outage_the_next_fetch_finds_a_key_rotated_meanwhile(jwks, clock):
    _publish(jwks)
    verifier = _verifier(jwks, jwks_cache_seconds=300, refetch_cooldown=30)
    jwks.up = False
    with pytest.raises(InvalidToken):
        verifier.verify(_publish(jwks)())  # nothing fetched yet, and the fetch fails
    sign_new = _publish(jwks)
    jwks.up = True
    with pytest.raises(InvalidToken):
        verifier.verify(sign_new())  # within the cooldown of the failure: not asked again
    clock(31)
    assert verifier.verify(sign_new()).client_id == "m"
