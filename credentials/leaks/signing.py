"""The signature on GitHub's secret-scanning alerts: ECDSA P-256 / SHA-256 over the raw body.

The operator configures GitHub's public keys (the document served at
https://api.github.com/meta/public_keys/secret_scanning) inline in
`PORTAL_SECRET_SCANNING_PUBLIC_KEYS` or as a file named by
`PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE`; a changed file is picked up without a restart.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

KEY_ID_HEADER = "Github-Public-Key-Identifier"
SIGNATURE_HEADER = "Github-Public-Key-Signature"
MAX_KEY_ID_LENGTH = 256
MAX_SIGNATURE_LENGTH = 512  # a base64 DER P-256 signature is at most 96 characters
MAX_KEYS_FILE_BYTES = 64 * 1024

PublicKeys = dict[str, ec.EllipticCurvePublicKey]


class KeysMisconfigured(Exception):
    """The configured public keys cannot be used; the message says why (never key material)."""


class SignatureRefused(Exception):
    """The request's signature headers are missing or do not verify; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def configured() -> bool:
    """Return whether the operator configured any public keys (the endpoint exists only then)."""
    return bool(
        getattr(settings, "PORTAL_SECRET_SCANNING_PUBLIC_KEYS", "")
        or getattr(settings, "PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE", "")
    )


def public_keys() -> PublicKeys:
    """Return the configured public keys by key identifier, or raise KeysMisconfigured."""
    inline = getattr(settings, "PORTAL_SECRET_SCANNING_PUBLIC_KEYS", "")
    if inline:
        return _parse_cached(inline)
    path = getattr(settings, "PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE", "")
    if not path:
        raise KeysMisconfigured("No secret scanning public keys are configured.")
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise KeysMisconfigured(f"Cannot read {path}: {exc.strerror}.") from None
    return _read_file(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _read_file(path: str, _mtime_ns: int, size: int) -> PublicKeys:
    # Cached by modification time and size: a refreshed file is read again on the next request.
    if size > MAX_KEYS_FILE_BYTES:
        raise KeysMisconfigured(f"{path} is larger than {MAX_KEYS_FILE_BYTES} bytes.")
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_public_keys(handle.read())
    except OSError as exc:
        raise KeysMisconfigured(f"Cannot read {path}: {exc.strerror}.") from None


@lru_cache(maxsize=4)
def _parse_cached(text: str) -> PublicKeys:
    return parse_public_keys(text)


def parse_public_keys(text: str) -> PublicKeys:
    """Parse GitHub's `{"public_keys": [{"key_identifier", "key", "is_current"}]}` document.

    Every listed key is accepted, current or not: GitHub may still sign with a key it is
    retiring; the operator drops a key by removing it from the document.
    """
    try:
        document: Any = json.loads(text)
    except (ValueError, RecursionError):
        raise KeysMisconfigured("The public keys are not valid JSON.") from None
    entries = document.get("public_keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise KeysMisconfigured('Expected {"public_keys": [{"key_identifier": …, "key": …}, …]}.')
    keys: PublicKeys = {}
    for index, entry in enumerate(entries):
        key_id = entry.get("key_identifier") if isinstance(entry, dict) else None
        pem = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(key_id, str) or not key_id or not isinstance(pem, str):
            raise KeysMisconfigured(f"public_keys[{index}] needs a key_identifier and a PEM key.")
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeysMisconfigured(f"public_keys[{index}] ({key_id}) is not a PEM public key.") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise KeysMisconfigured(f"public_keys[{index}] ({key_id}) is not an ECDSA P-256 key.")
        keys[key_id] = key
    return keys


def verify(body: bytes, *, key_id: str, signature: str, keys: PublicKeys) -> None:
    """Check the base64 DER ECDSA signature over the exact raw `body`; raise SignatureRefused if not."""
    key_id, signature = (key_id or "").strip(), (signature or "").strip()
    if not key_id:
        raise SignatureRefused("missing_key_identifier", f"The {KEY_ID_HEADER} header is missing.")
    if not signature:
        raise SignatureRefused("missing_signature", f"The {SIGNATURE_HEADER} header is missing.")
    key = keys.get(key_id) if len(key_id) <= MAX_KEY_ID_LENGTH else None
    if key is None:
        raise SignatureRefused("unknown_key", "The public key identifier is not one this portal trusts.")
    try:
        if len(signature) > MAX_SIGNATURE_LENGTH:
            raise ValueError
        der = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        raise SignatureRefused("malformed_signature", "The signature is not base64.") from None
    try:
        key.verify(der, body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureRefused("bad_signature", "The signature does not match the request body.") from None
