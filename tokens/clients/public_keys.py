"""Parse the public keys registered for private_key_jwt applications (JWK or PEM, public members only)."""

from __future__ import annotations

import base64
import binascii
import json
import re

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import load_der_x509_certificate, load_pem_x509_certificate
from django.core.exceptions import ValidationError
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tokens.jwk import PRIVATE_MEMBERS, thumbprint

MIN_RSA_KEY_SIZE = 2048
#: OpenSSL verifies with RSA moduli of at most 16384 bits: a larger key could never sign an assertion.
MAX_RSA_KEY_SIZE = 16384
#: FIPS 186-5 §A.1.1: an odd public exponent with 2^16 < e < 2^256 (a huge one makes every check slow).
MIN_RSA_EXPONENT, MAX_RSA_EXPONENT = 65537, 2**256


_RSA_ALGORITHMS = ("RS256", "PS256")


_CURVE_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384"}


def _refuse(message: str) -> ValidationError:
    return ValidationError({"public_key": message})


PRIVATE_KEY_MESSAGE = (
    "This is a private key. Paste only the public key: the private key must never leave your "
    "service (derive the public one with `openssl pkey -in private.pem -pubout`)."
)


#: A run of base64 this long outside PEM armor may be a private key's body pasted without its lines.
_BARE_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{100,}")


def _holds_private_members(data, depth: int = 0) -> bool:
    if depth > 8:
        return True  # deeper than any key set: refuse to echo rather than search on
    if isinstance(data, dict):
        return bool(PRIVATE_MEMBERS & set(data)) or any(
            _holds_private_members(value, depth + 1) for value in data.values()
        )
    if isinstance(data, list):
        return any(_holds_private_members(value, depth + 1) for value in data)
    return False


def looks_private(text: str) -> bool:
    """Return whether pasted key text may carry private material (so a page never echoes it back).

    PEM armor naming a private key, a JWK's private members anywhere in pasted JSON (a key set,
    a list, a wrapping object), or a long base64 run outside armor (a key's body pasted alone).
    """
    text = (text or "").strip()
    if "PRIVATE KEY" in text:
        return True
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python recurses
            return any(f'"{member}"' in text for member in PRIVATE_MEMBERS)
        return _holds_private_members(data)
    return "-----BEGIN" not in text and _BARE_BASE64.search("".join(text.split())) is not None


def _check_purpose(data: dict, key) -> None:
    """Refuse a JWK declared for other uses than signing, or whose `x5c` is another key (RFC 7517 §4)."""
    if data.get("use", "sig") != "sig":
        raise _refuse(
            'This key is declared for encryption (`use`); register a signature key (`"use": "sig"`).'
        )
    key_ops = data.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise _refuse('This key\'s `key_ops` do not include "verify": it is not declared for signatures.')
    chain = data.get("x5c")
    if chain is None:
        return
    try:
        certificate = load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
    except (TypeError, KeyError, IndexError, ValueError, binascii.Error):
        raise _refuse("The key's `x5c` does not start with a readable certificate.") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_bytes(*spki):
        raise _refuse("The key's `x5c` certificate is for another key (RFC 7517 §4.7).")


def _load_jwk(text: str):
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise _refuse("This is not valid JSON. Paste a public JWK or a PEM public key.") from None
    if isinstance(data, dict) and isinstance(data.get("keys"), list):
        if len(data["keys"]) != 1:
            raise _refuse("Paste one key, not a key set with several keys.")
        data = data["keys"][0]
    if not isinstance(data, dict) or not isinstance(data.get("kty"), str):
        raise _refuse("A JWK is a JSON object with a `kty` member.")
    if PRIVATE_MEMBERS & set(data):
        if data["kty"] == "oct":
            raise _refuse("A symmetric (oct) key cannot be registered; use an RSA, EC or Ed25519 key pair.")
        raise _refuse(PRIVATE_KEY_MESSAGE)
    loaders = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}
    loader = loaders.get(data["kty"])
    if loader is None:
        raise _refuse("Use an RSA, EC (P-256, P-384) or OKP (Ed25519) key.")
    try:
        key = loader.from_jwk(data)
    except (jwt.InvalidKeyError, ValueError, TypeError, KeyError, UnsupportedAlgorithm):
        raise _refuse("This JWK is not a usable public key.") from None
    _check_purpose(data, key)
    return key, data.get("alg")


def _load_pem(text: str):
    if "PRIVATE KEY" in text:
        raise _refuse(PRIVATE_KEY_MESSAGE)
    data = text.encode()
    try:
        if "BEGIN CERTIFICATE" in text:
            return load_pem_x509_certificate(data).public_key()
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _refuse("This PEM block is not a public key or certificate we can read.") from None


def parse_public_key(jwk_or_pem: str, algorithm: str | None = None) -> dict:
    """Return the public JWK to store (`kid` = RFC 7638 thumbprint, `alg`, `use`) for pasted key text.

    Refuse private material, symmetric keys, weak RSA keys, unsupported curves and an
    algorithm that does not fit the key, with a message a person can act on.
    """
    text = (jwk_or_pem or "").strip()
    if not text:
        raise _refuse("Paste a public key (a JWK or a PEM block).")
    if len(text) > 16384:
        raise _refuse("This is too long for a public key.")
    declared = None
    if text.startswith("{"):
        key, declared = _load_jwk(text)
    elif text.startswith("-----BEGIN"):
        key = _load_pem(text)
    else:
        raise _refuse("Paste a public JWK (JSON) or a PEM block starting with -----BEGIN PUBLIC KEY-----.")
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise _refuse(PRIVATE_KEY_MESSAGE)
    if algorithm and declared and algorithm != declared:
        raise _refuse(f"The key says it is for {declared}, not {algorithm}.")
    algorithm = algorithm or declared
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_KEY_SIZE:
            raise _refuse(f"RSA keys must have at least {MIN_RSA_KEY_SIZE} bits.")
        if key.key_size > MAX_RSA_KEY_SIZE:
            raise _refuse(f"RSA keys may have at most {MAX_RSA_KEY_SIZE} bits.")
        exponent = key.public_numbers().e
        if not (MIN_RSA_EXPONENT <= exponent < MAX_RSA_EXPONENT and exponent % 2):
            raise _refuse("This RSA key's public exponent is unusual; use the standard 65537.")
        algorithm = algorithm or "RS256"
        allowed, jwk = _RSA_ALGORITHMS, RSAAlgorithm.to_jwk(key, as_dict=True)
        required = ("e", "kty", "n")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        expected = _CURVE_ALGORITHMS.get({"secp256r1": "P-256", "secp384r1": "P-384"}.get(key.curve.name, ""))
        if expected is None:
            raise _refuse("Use an EC key on P-256 (ES256) or P-384 (ES384).")
        algorithm = algorithm or expected
        allowed, jwk = (expected,), ECAlgorithm.to_jwk(key, as_dict=True)
        required = ("crv", "kty", "x", "y")
    elif isinstance(key, ed25519.Ed25519PublicKey):
        algorithm = algorithm or "EdDSA"
        allowed, jwk = ("EdDSA",), OKPAlgorithm.to_jwk(key, as_dict=True)
        required = ("crv", "kty", "x")
    else:
        raise _refuse("Use an RSA (2048 bits or more), EC (P-256, P-384) or Ed25519 key.")
    if algorithm not in allowed:
        raise _refuse(f"A key of this type signs with {' or '.join(allowed)}, not {algorithm}.")
    public = {k: jwk[k] for k in required}
    return {**public, "kid": thumbprint(public), "alg": algorithm, "use": "sig"}
