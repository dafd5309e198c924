"""What `parse_public_key` accepts: the RFC 7517 members saying what a key is for; usable RSA keys."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from jwt.algorithms import ECAlgorithm

from tokens.clients.public_keys import parse_public_key


def _public_jwk(**members) -> str:
    jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    return json.dumps({**jwk, **members})


@pytest.mark.parametrize(
    "members",
    [{"use": "enc"}, {"key_ops": ["encrypt", "wrapKey"]}],
    ids=["use-enc", "key_ops-encrypt"],
)
def test_a_jwk_declared_for_encryption_is_refused(members):
    """RFC 7517 §4.2/§4.3: `use: "enc"` / `key_ops` without `verify` say the key is not for signatures."""
    with pytest.raises(ValidationError):
        parse_public_key(_public_jwk(**members))


def test_a_jwk_with_an_unparseable_x5c_is_refused():
    """RFC 7517 §4.7: the key in the first x5c certificate MUST match the JWK's key."""
    with pytest.raises(ValidationError):
        parse_public_key(_public_jwk(x5c=["not base64 DER at all!"]))


def _b64uint(value: int) -> str:
    return (
        base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
    )


def _rsa_jwk(n_bits: int, e: int) -> str:
    n = secrets.randbits(n_bits) | (1 << (n_bits - 1)) | 1
    return json.dumps({"kty": "RSA", "n": _b64uint(n), "e": _b64uint(e)})


def test_an_rsa_key_with_a_huge_public_exponent_is_refused():
    """FIPS 186-5: 2^16 < e < 2^256. With a ~3000-bit exponent every assertion checked against the
    key costs a full-size exponentiation, which anyone can trigger by naming the client id."""
    with pytest.raises(ValidationError):
        parse_public_key(_rsa_jwk(3072, (1 << 3000) + 1))


def test_an_rsa_key_larger_than_any_verifier_accepts_is_refused():
    """OpenSSL refuses RSA moduli over 16384 bits: such a key could never verify an assertion."""
    with pytest.raises(ValidationError):
        parse_public_key(_rsa_jwk(20000, 65537))


def test_the_standard_exponent_and_a_matching_x5c_are_accepted():
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "service")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    der = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    jwk = {**ECAlgorithm.to_jwk(private.public_key(), as_dict=True), "use": "sig", "key_ops": ["verify"]}
    assert parse_public_key(json.dumps({**jwk, "x5c": [der]}))["kid"]
    other = json.loads(_public_jwk())
    with pytest.raises(ValidationError, match="another key"):
        parse_public_key(json.dumps({**other, "x5c": [der]}))
    assert parse_public_key(_rsa_jwk(2048, 65537))["alg"] == "RS256"
