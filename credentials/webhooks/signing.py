"""Webhook secrets (generated, encrypted at rest) and the HMAC-SHA256 signature: sign and verify.

Wire format, pinned (docs/webhooks.md):

    Portal-Webhook-Id:        the event id (a UUID; the same on every retry)
    Portal-Webhook-Timestamp: unix seconds when this attempt was signed
    Portal-Webhook-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

During a secret rotation's overlap the header carries one `v1=` entry per secret, separated
by spaces; a receiver accepts the request when any entry matches a secret it holds.
`verify_signature` needs only the standard library, so a receiver may copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache

SIGNATURE_VERSION = "v1"
ID_HEADER = "Portal-Webhook-Id"
TIMESTAMP_HEADER = "Portal-Webhook-Timestamp"
SIGNATURE_HEADER = "Portal-Webhook-Signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")


class SignatureError(ValueError):
    """The request is not a genuine, fresh webhook from the portal."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """Return the signature header value: one `v1=` entry per secret, current secret first."""
    return " ".join(f"{SIGNATURE_VERSION}={sign(s, timestamp, body)}" for s in secrets)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_signature(
    *,
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Iterable[str],
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check a webhook request's signature and freshness; return its event id or raise SignatureError.

    `body` must be the raw request body, byte for byte (not re-serialised JSON). `secret`
    may be several secrets (yours, during your own rotation). The timestamp must be within
    `tolerance_seconds` of now, which bounds replays; deduplicate on the returned event id, the
    body's `id` (signed), which the `Portal-Webhook-Id` header must repeat.
    """
    event_id = _header(headers, ID_HEADER)
    timestamp_text = _header(headers, TIMESTAMP_HEADER)
    signature_text = _header(headers, SIGNATURE_HEADER)
    if not event_id or not timestamp_text or not signature_text:
        raise SignatureError("missing webhook header")
    # Unix seconds, digits only: a 400-digit value would overflow the float comparison below.
    if not _TIMESTAMP_RE.fullmatch(timestamp_text):
        raise SignatureError("malformed timestamp")
    timestamp = int(timestamp_text)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        raise SignatureError("timestamp outside the tolerance")
    # As bytes: compare_digest raises TypeError on str with non-ASCII characters.
    candidates = [
        value.encode()
        for version, _, value in (e.partition("=") for e in signature_text.split())
        if version == "v1"
    ]
    secrets = [secret] if isinstance(secret, str) else list(secret)
    for s in secrets:
        expected = sign(s, timestamp, body).encode()
        # Compare against every entry, constant-time each, so timing says nothing about which matched.
        if any(hmac.compare_digest(expected, c) for c in candidates):
            return _signed_event_id(body, event_id)
    raise SignatureError("no valid signature")


def _signed_event_id(body: bytes, event_id: str) -> str:
    # The id header is not signed; the body's `id` is. A replay with a fresh header id would
    # otherwise pass deduplication: the two must agree, and the signed one is returned.
    try:
        signed = json.loads(body).get("id")
    except (ValueError, AttributeError):
        signed = None
    if not isinstance(signed, str) or signed != event_id:
        raise SignatureError("the event id does not match the signed body")
    return signed


# --- secrets at rest (server side only) -----------------------------------------------------


def generate_secret() -> str:
    """Return a new endpoint secret: `whsec_` + 40 base62 characters (~238 bits)."""
    # Imported here: the module's top stays standard-library only, for receivers to copy.
    from portal.infra.crypto import random_base62

    return SECRET_PREFIX + random_base62(40)


def secret_hint(secret: str) -> str:
    """Return the public start of a secret, to tell secrets apart in lists."""
    return secret[: len(SECRET_PREFIX) + 4]


@lru_cache(maxsize=1)
def _cipher():
    """Return the cipher for endpoint secrets (portal.infra.crypto.SecretCipher).

    Its key is derived with HKDF from the encryption key, which keeps webhook secrets and JWT
    signing keys apart (a ciphertext of one can never be decrypted as the other); previous
    keys (PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY) still decrypt during a key change.
    """
    # Imported here: the module's top stays standard-library only, for receivers to copy.
    from portal.infra.crypto import SecretCipher, encryption_key_hkdf

    return SecretCipher(label="webhook secrets", derive=encryption_key_hkdf(b"portal webhook secrets v1"))


def encrypt_secret(secret: str) -> bytes:
    """Return the ciphertext stored for `secret`."""
    return _cipher().encrypt(secret.encode())


def decrypt_secret(ciphertext: bytes | memoryview) -> str:
    """Return the plaintext of a stored secret (only the sender calls this)."""
    return _cipher().decrypt(ciphertext).decode()


def reencrypt(ciphertext: bytes | memoryview, *, previous: Iterable[str]) -> bytes | None:
    """Return the ciphertext under the current key, or None when it already is (see SecretCipher)."""
    return _cipher().reencrypt(ciphertext, previous=previous)
