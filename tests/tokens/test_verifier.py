"""tokens.verifier: each RFC 8725 / RFC 9068 rejection in its own test, plus JWKS fetching over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK

from tests.support.servers import JWKSServer
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
    """A valid RSA key that is not in the JWKS."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(rsa_key, ec_key):
    return {
        "keys": [public_jwk_for(rsa_key.public_key(), "RS256"), public_jwk_for(ec_key.public_key(), "ES256")]
    }


@pytest.fixture
def verifier(jwks):
    by_kid = {k["kid"]: PyJWK(k) for k in jwks["keys"]}
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_resolver=by_kid.get)


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


def _sign(key, jwks, claims=None, *, alg="RS256", typ="at+jwt", kid=None) -> str:
    kid = kid or jwks["keys"][0 if alg == "RS256" else 1]["kid"]
    headers = {"kid": kid}
    if typ is not None:
        headers["typ"] = typ
    return jwt.encode(claims or _claims(), key, algorithm=alg, headers=headers)


def test_valid_rs256_token_passes(verifier, rsa_key, jwks):
    verified = verifier.verify(_sign(rsa_key, jwks))
    assert verified.client_id == "m2m_client"
    assert verified.scopes == {"orders:read"}
    assert verified.organization == "acme"


def test_valid_es256_token_passes(verifier, ec_key, jwks):
    assert verifier.verify(_sign(ec_key, jwks, alg="ES256")).claims["sub"] == "m2m_client"


def test_rejects_alg_none(verifier, jwks):
    header = {"alg": "none", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]}
    token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}."
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(token)


def test_rejects_hs256_signed_with_the_public_key(verifier, rsa_key, jwks):
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(f"{signing_input}.{_b64(signature)}")


def test_rejects_unknown_kid(verifier, rsa_key, jwks):
    with pytest.raises(InvalidToken, match="unknown kid"):
        verifier.verify(_sign(rsa_key, jwks, kid="no-such-key"))


def test_rejects_wrong_issuer(verifier, rsa_key, jwks):
    with pytest.raises(InvalidToken, match="issuer"):
        verifier.verify(_sign(rsa_key, jwks, _claims(iss="https://evil.example.test")))


def test_rejects_missing_audience(verifier, rsa_key, jwks):
    with pytest.raises(InvalidToken):
        verifier.verify(_sign(rsa_key, jwks, _claims(aud=None)))


def test_rejects_foreign_audience(verifier, rsa_key, jwks):
    with pytest.raises(InvalidToken, match="audience"):
        verifier.verify(_sign(rsa_key, jwks, _claims(aud="https://other-api.example.test")))


def test_rejects_expired_token(verifier, rsa_key, jwks):
    now = int(time.time())
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(_sign(rsa_key, jwks, _claims(iat=now - 600, nbf=now - 600, exp=now - 120)))


def test_accepts_expiry_within_leeway(verifier, rsa_key, jwks):
    now = int(time.time())
    verifier.verify(_sign(rsa_key, jwks, _claims(iat=now - 600, nbf=now - 600, exp=now - 5)))


def test_rejects_token_not_yet_valid(verifier, rsa_key, jwks):
    now = int(time.time())
    with pytest.raises(InvalidToken, match="not yet valid"):
        verifier.verify(_sign(rsa_key, jwks, _claims(nbf=now + 600, exp=now + 900)))


@pytest.mark.parametrize("typ", ["JWT", "jwt", "id_token+jwt", None])
def test_rejects_typ_other_than_at_jwt(verifier, rsa_key, jwks, typ):
    with pytest.raises(InvalidToken, match="typ"):
        verifier.verify(_sign(rsa_key, jwks, typ=typ))


def test_accepts_application_at_jwt_typ(verifier, rsa_key, jwks):
    verifier.verify(_sign(rsa_key, jwks, typ="application/at+jwt"))


def test_rejects_tampered_payload(verifier, rsa_key, jwks):
    header, _payload, signature = _sign(rsa_key, jwks).split(".")
    forged = _b64(json.dumps(_claims(scope="orders:read orders:write admin")).encode())
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(f"{header}.{forged}.{signature}")


def test_rejects_valid_signature_by_a_key_not_in_the_jwks(verifier, stranger_key, jwks):
    # The attacker reuses a published kid but signs with their own key.
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(_sign(stranger_key, jwks))


def test_rejects_stranger_key_under_its_own_kid(verifier, stranger_key, jwks):
    kid = public_jwk_for(stranger_key.public_key(), "RS256")["kid"]
    with pytest.raises(InvalidToken, match="unknown kid"):
        verifier.verify(_sign(stranger_key, jwks, kid=kid))


def test_rejects_algorithm_that_does_not_match_the_key(verifier, ec_key, jwks):
    # ES256 signature presented under the RSA key's kid.
    with pytest.raises(InvalidToken):
        verifier.verify(_sign(ec_key, jwks, alg="ES256", kid=jwks["keys"][0]["kid"]))


@pytest.mark.parametrize("claim", ["jti", "client_id", "exp", "iat", "sub", "scope"])
def test_rejects_missing_required_claim(verifier, rsa_key, jwks, claim):
    with pytest.raises(InvalidToken):
        verifier.verify(_sign(rsa_key, jwks, _claims(**{claim: None})))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "eyJ.eyJ.sig", "x" * 9000, b"\xff\xfe.a.b"])
def test_rejects_garbage(verifier, garbage):
    with pytest.raises(InvalidToken):
        verifier.verify(garbage)


def _with_header(token: str, header_segment: str) -> str:
    return header_segment + token[token.index(".") :]


@pytest.mark.parametrize(
    "header_segment",
    [
        "e!!!",  # not base64url
        _b64(b"[1, 2]"),  # JSON, but not an object
        _b64(b"{not json"),
        _b64(b'{"alg":"RS256"}') + "=",  # padding on a segment whose length is already a multiple of 4
        "eyJ",  # truncated mid-character
        _b64(b"\xff\xfe{}"),  # not UTF-8
    ],
)
def test_rejects_malformed_header_before_any_key_lookup(rsa_key, jwks, header_segment):
    looked_up = []
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_resolver=looked_up.append)
    with pytest.raises(InvalidToken, match="malformed header"):
        verifier.verify(_with_header(_sign(rsa_key, jwks), header_segment))
    assert looked_up == []


def test_rejects_header_with_stray_bits(verifier, rsa_key, jwks):
    # A non-canonical last character decodes to the same bytes; PyJWT refuses it, so do we.
    segment = _sign(rsa_key, jwks).split(".")[0]
    assert len(segment) % 4 in (2, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    stray = segment[:-1] + alphabet[alphabet.index(segment[-1]) + 1]
    with pytest.raises(InvalidToken):
        verifier.verify(_with_header(_sign(rsa_key, jwks), stray))


def test_accepts_padded_header_segment(verifier, rsa_key, jwks):
    token = _sign(rsa_key, jwks)
    segment = token.split(".")[0]
    padded = segment + "=" * (-len(segment) % 4)
    if padded == segment:
        pytest.skip("the header happens to need no padding")
    # The signature covers the header as sent, so sign the padded form.
    signing_input = f"{padded}.{token.split('.')[1]}".encode()
    signature = rsa_key.sign(signing_input, *_rs256_args())
    assert verifier.verify(f"{padded}.{token.split('.')[1]}.{_b64(signature)}").client_id == "m2m_client"


def _rs256_args():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.PKCS1v15(), hashes.SHA256()


@pytest.mark.parametrize("kid", [123, ["k"], None, ""])
def test_rejects_kid_that_is_not_a_non_empty_string(verifier, rsa_key, jwks, kid):
    token = _sign(rsa_key, jwks)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    header["kid"] = kid
    with pytest.raises(InvalidToken, match="kid"):
        verifier.verify(_with_header(token, _b64(json.dumps(header).encode())))


def test_refuses_symmetric_algorithms_in_its_allowlist():
    with pytest.raises(ValueError):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_resolver=dict().get, algorithms=["HS256", "none"])


# --- the organisation pin (`organization=`): an audience alone does not say which tenant -------------


@pytest.fixture
def pinned(jwks):
    by_kid = {k["kid"]: PyJWK(k) for k in jwks["keys"]}
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_resolver=by_kid.get, organization="acme")


def test_pinned_verifier_accepts_its_organisations_token(pinned, rsa_key, jwks):
    assert pinned.verify(_sign(rsa_key, jwks)).organization == "acme"


@pytest.mark.parametrize("org_id", ["globex", "ACME", "acme ", "", 7, ["acme"], {"slug": "acme"}, None])
def test_pinned_verifier_rejects_any_other_org_id(pinned, rsa_key, jwks, org_id):
    # Same audience, issuer and signature: only the organisation differs (or is missing, or not a slug).
    token = _sign(rsa_key, jwks, _claims(org_id=org_id))
    with pytest.raises(InvalidToken) as caught:
        pinned.verify(token)
    assert caught.value.reason == "wrong organization"


def test_unpinned_verifier_accepts_every_organisation(verifier, rsa_key, jwks):
    assert verifier.verify(_sign(rsa_key, jwks, _claims(org_id="globex"))).organization == "globex"


def test_pin_to_several_organisations(jwks, rsa_key):
    by_kid = {k["kid"]: PyJWK(k) for k in jwks["keys"]}
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, key_resolver=by_kid.get, organization=["acme", "initech"]
    )
    assert verifier.verify(_sign(rsa_key, jwks, _claims(org_id="initech"))).organization == "initech"
    with pytest.raises(InvalidToken, match="organization"):
        verifier.verify(_sign(rsa_key, jwks, _claims(org_id="globex")))


def test_pin_is_checked_after_the_signature(pinned, stranger_key, jwks):
    # A forged token naming the pinned organisation is still refused for its signature.
    token = _sign(stranger_key, jwks, _claims(org_id="acme"))
    with pytest.raises(InvalidToken, match="signature"):
        pinned.verify(token)


@pytest.mark.parametrize("organization", ["", [], [""], [None]])
def test_an_empty_pin_is_a_configuration_error(organization):
    with pytest.raises(ValueError, match="organisation"):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_resolver=dict().get, organization=organization)


@pytest.fixture
def jwks_server(jwks):
    with JWKSServer({"keys": [jwks["keys"][0]]}) as server:
        yield server


def test_jwks_url_fetches_once_and_caches(jwks_server, rsa_key, jwks):
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url)
    for _ in range(3):
        verifier.verify(_sign(rsa_key, jwks))
    assert jwks_server.fetches == 1


def test_unknown_kid_refetch_is_rate_limited(jwks_server, rsa_key, jwks):
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url, refetch_cooldown=60)
    verifier.verify(_sign(rsa_key, jwks))
    for n in range(5):
        with pytest.raises(InvalidToken, match="unknown kid"):
            verifier.verify(_sign(rsa_key, jwks, kid=f"random-{n}"))
    # The routine first fetch, then one refetch for the first unknown kid; the cooldown then
    # holds the other four (a routine fetch does not start it: a key rotated just after one
    # must be found at once).
    assert jwks_server.fetches == 2


def test_new_key_is_picked_up_by_refetch(jwks_server, ec_key, jwks):
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url, refetch_cooldown=0)
    with pytest.raises(InvalidToken, match="unknown kid"):
        verifier.verify(_sign(ec_key, jwks, alg="ES256"))
    jwks_server.jwks = jwks  # the issuer published a new key
    verifier.verify(_sign(ec_key, jwks, alg="ES256"))


@pytest.mark.parametrize(
    "url",
    [
        "http://portal.example.com/.well-known/jwks.json",
        "HTTP://portal.example.com/.well-known/jwks.json",
    ],
)
def test_a_plain_http_jwks_url_is_a_configuration_error(url):
    """The keys that decide every token come over TLS: over plain http an on-path attacker serves
    their own and signs tokens the service accepts. Plain http from this machine stays allowed
    for development."""
    with pytest.raises(ValueError):
        TokenVerifier(issuer="https://portal.example.com", audience="https://api.example.com", jwks_url=url)
    for local in ("http://127.0.0.1:8000/.well-known/jwks.json", "http://localhost/.well-known/jwks.json"):
        TokenVerifier(issuer="http://127.0.0.1:8000", audience="https://api.example.com", jwks_url=local)
