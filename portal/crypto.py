"""Secret generation and keyed digests shared by API keys, client secrets and invitations.

Secrets issued here carry >=160 bits from `secrets`, so NIST SP 800-63B allows a fast
approved one-way function: HMAC-SHA256 under a server-side, versioned pepper
(`PORTAL_PEPPERS`). Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib
from functools import lru_cache

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


def crc32_base62(value: str) -> str:
    """Return the 6-character base62 CRC32 checksum of `value` (GitHub token style)."""
    return base62_encode(zlib.crc32(value.encode("ascii")), 6)


@lru_cache(maxsize=8)
def _parse_peppers(raw: str) -> tuple[str, dict[str, bytes]]:
    peppers: dict[str, bytes] = {}
    current = ""
    for index, item in enumerate(part.strip() for part in raw.split(",") if part.strip()):
        pepper_id, sep, secret = item.partition(":")
        if not sep or not pepper_id or not secret:
            raise ImproperlyConfigured("PORTAL_PEPPERS must look like 'id:secret[,id:secret…]'.")
        peppers[pepper_id] = secret.encode()
        if index == 0:
            current = pepper_id
    if not peppers:
        raise ImproperlyConfigured("PORTAL_PEPPERS holds no pepper.")
    return current, peppers


def peppers() -> tuple[str, dict[str, bytes]]:
    """Return the current pepper id and every configured pepper by id."""
    return _parse_peppers(settings.PORTAL_PEPPERS)


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
    candidate = hmac.new(pepper, value.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(candidate, digest)
