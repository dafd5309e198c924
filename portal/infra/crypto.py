"""Secret generation, keyed digests and encryption at rest, shared by every kind of secret.

Secrets issued here carry >=160 bits from `secrets`, so NIST SP 800-63B allows a fast
approved one-way function: HMAC-SHA256 under a server-side, versioned pepper
(`PORTAL_PEPPERS`). Comparison is constant-time. Secrets the portal must read back are
encrypted instead (`SecretCipher`), under the current and the previous encryption keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

BASE62_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE62_INDEX = {c: i for i, c in enumerate(BASE62_ALPHABET)}


def random_base62(length: int) -> str:
    """Return `length` uniformly random base62 characters (5.95 bits each)."""
    return "".join(secrets.choice(BASE62_ALPHABET) for _ in range(length))


def base62_encode(number: int, width: int) -> str:
    """Encode a non-negative integer as fixed-width base62."""
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(BASE62_ALPHABET[rem])
    if number:
        raise ValueError("number does not fit in the width")
    return "".join(reversed(chars))


def is_base62(value: str) -> bool:
    """Return whether every character of `value` is base62."""
    return all(c in _BASE62_INDEX for c in value)


#: Every two-character base62 string, in order: a CRC32 (< 62**6) is three of them.
_BASE62_PAIRS = tuple(a + b for a in BASE62_ALPHABET for b in BASE62_ALPHABET)


def crc32_base62(value: str) -> str:
    """Return the 6-character base62 CRC32 checksum of `value` (GitHub token style).

    The same digits as `base62_encode(crc, 6)`, two at a time: every presented key is checked.
    """
    high, low = divmod(zlib.crc32(value.encode("ascii")), 3844)
    high, middle = divmod(high, 3844)
    return _BASE62_PAIRS[high] + _BASE62_PAIRS[middle] + _BASE62_PAIRS[low]


#: A pepper id is stored beside every digest (`pepper_id` columns, max_length=16).
PEPPER_ID_MAX_LENGTH = 16
_PEPPER_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{PEPPER_ID_MAX_LENGTH}}}")


@lru_cache(maxsize=8)
def parse_peppers(raw: str) -> tuple[str, dict[str, bytes]]:
    peppers: dict[str, bytes] = {}
    current = ""
    for index, item in enumerate(part.strip() for part in raw.split(",") if part.strip()):
        pepper_id, sep, secret = item.partition(":")
        if not sep or not pepper_id or not secret:
            raise ImproperlyConfigured("PORTAL_PEPPERS must look like 'id:secret[,id:secret…]'.")
        # Checked here, not by the database: a longer id would fail every new credential's INSERT.
        if not _PEPPER_ID.fullmatch(pepper_id):
            raise ImproperlyConfigured(
                f"PORTAL_PEPPERS: a pepper id is 1 to {PEPPER_ID_MAX_LENGTH} characters of A-Z, a-z, 0-9, "
                "'_' and '-' (see docs/configuration.md)."
            )
        # A repeated id would silently keep only its last secret: "the first entry makes new
        # digests" would then be false, and digests made under the other secret would never verify.
        if pepper_id in peppers:
            raise ImproperlyConfigured(f"PORTAL_PEPPERS names the pepper id {pepper_id!r} twice.")
        peppers[pepper_id] = secret.encode()
        if index == 0:
            current = pepper_id
    if not peppers:
        raise ImproperlyConfigured("PORTAL_PEPPERS holds no pepper.")
    return current, peppers


def peppers() -> tuple[str, dict[str, bytes]]:
    """Return the current pepper id and every configured pepper by id."""
    return parse_peppers(settings.PORTAL_PEPPERS)


def keyed_digest(value: str, *, pepper_id: str | None = None) -> tuple[str, str]:
    """Return `(pepper_id, hex HMAC-SHA256 digest)` of `value` under the current (or named) pepper."""
    current, table = peppers()
    pepper_id = pepper_id or current
    digest = hmac.new(table[pepper_id], value.encode(), hashlib.sha256).hexdigest()
    return pepper_id, digest


def verify_digest(value: str, *, pepper_id: str, digest: str) -> bool:
    """Check `value` against a stored digest in constant time; unknown pepper ids never match."""
    _, table = peppers()
    pepper = table.get(pepper_id)
    if pepper is None:
        return False
    return digest_matches(pepper, value, digest)


def digest_matches(pepper: bytes, value: str, digest: str) -> bool:
    """Check `value` against a hex HMAC-SHA256 digest under `pepper`, in constant time.

    For a caller that already holds the pepper (`verify_digest` looks it up by id). The
    one-shot `hmac.digest` is OpenSSL's HMAC in one call: the same digest as `hmac.new`.
    """
    return hmac.compare_digest(hmac.digest(pepper, value.encode(), "sha256").hex(), digest)


# --- encryption at rest -----------------------------------------------------------------------
#
# Secrets the portal must read back (JWT signing keys, webhook signing secrets, MFA secrets)
# cannot be digests: they are Fernet-encrypted under PORTAL_SIGNING_KEY_ENCRYPTION_KEY. Each
# family derives its own Fernet key from it, so a ciphertext of one family never opens as
# another. Encryption uses the current key; decryption also accepts every previous key
# (PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY), so rotating the key stops nothing while
# `manage.py reencrypt_secrets` moves the stored ciphertexts over (docs/operations.md).


def encryption_key_as_is(root: str) -> bytes:
    """Use the configured key itself as the Fernet key (JWT signing keys, the first family)."""
    return root.strip().encode()


def encryption_key_hkdf(info: bytes) -> Callable[[str], bytes]:
    """Return a derivation: HKDF-SHA256 of the configured key with `info`."""

    def derive(root: str) -> bytes:
        material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
        return base64.urlsafe_b64encode(material.derive(root.strip().encode()))

    return derive


def encryption_key_hmac(info: bytes) -> Callable[[str], bytes]:
    """Return a derivation: HMAC-SHA256 keyed with the configured key over `info`."""

    def derive(root: str) -> bytes:
        return base64.urlsafe_b64encode(hmac.new(root.strip().encode(), info, hashlib.sha256).digest())

    return derive


def check_fernet_keys(keys: Iterable[str]) -> list[str]:
    """Return the keys stripped, or raise ValueError when one is not a Fernet key."""
    stripped = [k.strip() for k in keys if k and k.strip()]
    for key in stripped:
        Fernet(key.encode())  # raises ValueError for anything but 32 url-safe base64 bytes
    return stripped


def previous_encryption_keys() -> list[str]:
    """Return the previous encryption keys still accepted for decryption (may be empty)."""
    return [k.strip() for k in settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS if k and k.strip()]


@lru_cache(maxsize=64)
def _fernet(derive: Callable[[str], bytes], root: str) -> Fernet:
    return Fernet(derive(root))


@dataclass(frozen=True)
class SecretCipher:
    """Fernet encryption at rest for one family of secrets, under the current and previous keys."""

    #: What the family is, for error messages ("signing keys", "MFA secrets").
    label: str
    #: How the family's Fernet key is derived from a configured encryption key.
    derive: Callable[[str], bytes]

    def _multi(self, previous: Iterable[str] | None = None) -> MultiFernet:
        previous = previous_encryption_keys() if previous is None else previous
        roots = [settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY.strip(), *previous]
        return MultiFernet([_fernet(self.derive, root) for root in dict.fromkeys(roots)])

    def encrypt(self, plaintext: bytes) -> bytes:
        """Return the ciphertext of `plaintext` under the current key."""
        return self._multi(previous=[]).encrypt(plaintext)

    def decrypt(self, ciphertext: bytes | memoryview) -> bytes:
        """Return the plaintext; the current key and every previous key are tried.

        Raises `cryptography.fernet.InvalidToken` when none of them opens it.
        """
        return self._multi().decrypt(bytes(ciphertext))

    def reencrypt(self, ciphertext: bytes | memoryview, *, previous: Iterable[str]) -> bytes | None:
        """Return the ciphertext under the current key, or None when it already is.

        `previous` are the keys it may be under instead (already checked with
        `check_fernet_keys`). Raises `InvalidToken` when neither the current key nor any of
        them opens it.
        """
        token = bytes(ciphertext)
        try:
            self._multi(previous=[]).decrypt(token)
            return None
        except InvalidToken:
            pass
        return self._multi(previous=list(previous)).rotate(token)
