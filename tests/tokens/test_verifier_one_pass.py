"""tokens.verifier checks a plainly valid token in one pass; every verdict is the one jwt.decode gives.

The one-pass path (`TokenVerifier._claims_if_plainly_valid`) must accept only what `jwt.decode`
accepts, with the same claims, and refuse with the same reason: each token below is verified
both ways and the answers compared.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from jwt import PyJWK

from tokens.signing.keys import public_jwk_for
from tokens.verifier import InvalidToken, TokenVerifier

ISSUER = "https://portal.example.test"
AUDIENCE = "https://api.example.test"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def stranger_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(rsa_key, ec_key):
    return {
        "keys": [public_jwk_for(rsa_key.public_key(), "RS256"), public_jwk_for(ec_key.public_key(), "ES256")]
    }


def _resolver(jwks):
    by_kid = {k["kid"]: PyJWK(k) for k in jwks["keys"]}
    return by_kid.get


def _claims(**overrides) -> dict:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "m2m_client",
        "client_id": "m2m_client",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "jti-1",
        "scope": "orders:read",
        "org_id": "acme",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _raw(
    rsa_key, jwks, payload: bytes, *, header: dict | None = None, payload_segment: str | None = None
) -> str:
    """Sign arbitrary payload bytes (and header) with RS256, as an issuer could."""
    header = (
        header if header is not None else {"alg": "RS256", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]}
    )
    signing_input = f"{_b64(json.dumps(header).encode())}.{payload_segment or _b64(payload)}"
    signature = rsa_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _token(rsa_key, jwks, **overrides) -> str:
    return _raw(rsa_key, jwks, json.dumps(_claims(**overrides)).encode())


def _verdict(verifier: TokenVerifier, token) -> tuple[str, object]:
    try:
        return "accepted", verifier.verify(token).claims
    except InvalidToken as exc:
        return "refused", exc.reason


def _verdict_before(verifier: TokenVerifier, token) -> tuple[str, object]:
    """The verdict of jwt.decode alone: the one-pass path always defers to it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TokenVerifier, "_claims_if_plainly_valid", lambda self, *args: None)
        return _verdict(verifier, token)


def _cases(rsa_key, ec_key, stranger_key, jwks) -> dict[str, str]:
    now = int(time.time())
    valid = _token(rsa_key, jwks)
    head, body, signature = valid.split(".")
    kid = jwks["keys"][0]["kid"]
    other_body = _b64(json.dumps(_claims(scope="orders:write")).encode())
    flipped = signature[:40] + ("A" if signature[40] != "A" else "B") + signature[41:]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    stray = signature[:-1] + alphabet[(alphabet.index(signature[-1]) + 1) % 64]
    cases = {
        "valid": valid,
        "valid ES256": jwt.encode(
            _claims(), ec_key, algorithm="ES256", headers={"typ": "at+jwt", "kid": jwks["keys"][1]["kid"]}
        ),
        "valid, no nbf": _token(rsa_key, jwks, nbf=None),
        "valid, no org_id": _token(rsa_key, jwks, org_id=None),
        "audience among several": _token(rsa_key, jwks, aud=["https://other.test", AUDIENCE]),
        "expired": _token(rsa_key, jwks, exp=now - 100),
        "expired within the leeway": _token(rsa_key, jwks, exp=now - 10),
        "exp as a string": _token(rsa_key, jwks, exp=str(now + 300)),
        "exp not a number": _token(rsa_key, jwks, exp="soon"),
        "exp a float": _token(rsa_key, jwks, exp=now + 300.5),
        "exp infinite": _raw(rsa_key, jwks, json.dumps(_claims(exp=float("inf"))).encode()),
        "nbf in the future": _token(rsa_key, jwks, nbf=now + 100),
        "nbf within the leeway": _token(rsa_key, jwks, nbf=now + 10),
        "nbf not a number": _token(rsa_key, jwks, nbf=[1]),
        "iat in the future": _token(rsa_key, jwks, iat=now + 100),
        "iat as a string": _token(rsa_key, jwks, iat=str(now)),
        "iat not a number": _token(rsa_key, jwks, iat="yesterday"),
        "wrong issuer": _token(rsa_key, jwks, iss="https://evil.test"),
        "issuer not a string": _token(rsa_key, jwks, iss=["https://portal.example.test"]),
        "foreign audience": _token(rsa_key, jwks, aud="https://other.test"),
        "empty audience": _token(rsa_key, jwks, aud=""),
        "empty audience list": _token(rsa_key, jwks, aud=[]),
        "audience list with a number": _token(rsa_key, jwks, aud=[AUDIENCE, 1]),
        "audience an object": _token(rsa_key, jwks, aud={"a": AUDIENCE}),
        "sub not a string": _token(rsa_key, jwks, sub=7),
        "jti not a string": _token(rsa_key, jwks, jti=7),
        "client_id not a string": _token(rsa_key, jwks, client_id=7),
        "scope not a string": _token(rsa_key, jwks, scope=["orders:read"]),
        "tampered payload": f"{head}.{other_body}.{signature}",
        "tampered signature": f"{head}.{body}.{flipped}",
        "signature with stray bits": f"{head}.{body}.{stray}",
        "empty signature": f"{head}.{body}.",
        "empty payload": _raw(rsa_key, jwks, b""),
        "payload not JSON": _raw(rsa_key, jwks, b"{not json"),
        "payload a JSON list": _raw(rsa_key, jwks, b"[1, 2]"),
        "payload with padding": _raw(
            rsa_key,
            jwks,
            b"",
            payload_segment=base64.urlsafe_b64encode(json.dumps(_claims()).encode()).decode(),
        ),
        "payload not base64url": f"{head}.{body[:-2]}!!.{signature}",
        "signed by a stranger under a known kid": _raw(stranger_key, jwks, json.dumps(_claims()).encode()),
        "crit b64 with b64 true": _raw(
            rsa_key,
            jwks,
            json.dumps(_claims()).encode(),
            header={"alg": "RS256", "typ": "at+jwt", "kid": kid, "b64": True, "crit": ["b64"]},
        ),
        "unknown crit": _raw(
            rsa_key,
            jwks,
            json.dumps(_claims()).encode(),
            header={"alg": "RS256", "typ": "at+jwt", "kid": kid, "exp": 1, "crit": ["exp"]},
        ),
        "b64 false": _raw(
            rsa_key,
            jwks,
            json.dumps(_claims()).encode(),
            header={"alg": "RS256", "typ": "at+jwt", "kid": kid, "b64": False, "crit": ["b64"]},
        ),
    }
    for claim in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"):
        cases[f"no {claim}"] = _token(rsa_key, jwks, **{claim: None})
    return cases


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"leeway": timedelta(seconds=5)},
        {"leeway": 0},
        {"audience": None, "verify_audience": False},
        {"audience": ["https://a.test", AUDIENCE]},
        {"organization": "acme"},
        {"organization": "globex"},
    ],
    ids=[
        "default",
        "timedelta leeway",
        "no leeway",
        "audience unchecked",
        "two audiences",
        "pinned",
        "other pin",
    ],
)
def test_every_verdict_is_the_one_jwt_decode_gives(rsa_key, ec_key, stranger_key, jwks, options):
    verifier = TokenVerifier(issuer=ISSUER, key_resolver=_resolver(jwks), **{"audience": AUDIENCE, **options})
    accepted = 0
    for name, token in _cases(rsa_key, ec_key, stranger_key, jwks).items():
        now, before = _verdict(verifier, token), _verdict_before(verifier, token)
        assert now == before, name
        accepted += now[0] == "accepted"
    assert accepted >= (0 if options.get("organization") == "globex" else 5)


def test_a_plainly_valid_token_is_checked_without_jwt_decode(rsa_key, ec_key, jwks, monkeypatch):
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_resolver=_resolver(jwks))
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: pytest.fail("jwt.decode called"))
    assert verifier.verify(_token(rsa_key, jwks)).client_id == "m2m_client"
    es256 = jwt.encode(
        _claims(), ec_key, algorithm="ES256", headers={"typ": "at+jwt", "kid": jwks["keys"][1]["kid"]}
    )
    assert verifier.verify(es256).scopes == {"orders:read"}


def test_a_bad_signature_is_refused_in_one_pass(rsa_key, stranger_key, jwks, monkeypatch):
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_resolver=_resolver(jwks))
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: pytest.fail("jwt.decode called"))
    with pytest.raises(InvalidToken, match="bad signature"):
        verifier.verify(_raw(stranger_key, jwks, json.dumps(_claims()).encode()))
