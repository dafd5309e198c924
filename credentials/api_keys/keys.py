"""The API key format: `ipk_<env>_<key id><secret><checksum>`, parsed without touching the database."""

from __future__ import annotations

import re
from dataclasses import dataclass

from portal.infra.crypto import crc32_base62, random_base62

PREFIX = "ipk"
ENVIRONMENTS = ("live", "test")
KEY_ID_LENGTH = 12
# 32 base62 characters carry 32 * log2(62) ≈ 190 bits from `secrets`, above the 160 the brief asks for.
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + 1 + 4 + 1 + KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH

_KEY_RE = re.compile(
    rf"^{PREFIX}_(?P<env>live|test)_(?P<key_id>[0-9A-Za-z]{{{KEY_ID_LENGTH}}})"
    rf"[0-9A-Za-z]{{{SECRET_LENGTH}}}(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})$"
)
KEY_ID_RE = rf"[0-9A-Za-z]{{{KEY_ID_LENGTH}}}"
#: A whole key anywhere in a text (not anchored; no checksum test): what must never sit in a URL.
_WHOLE_KEY_RE = re.compile(
    rf"{PREFIX}_(?:live|test)_[0-9A-Za-z]{{{KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH}}}"
)


@dataclass(frozen=True)
class ParsedKey:
    """A key that passed the format and checksum checks (not yet checked against the database)."""

    environment: str
    key_id: str
    raw: str


def display_prefix(environment: str, key_id: str) -> str:
    """Return the non-secret start of a key, shown in lists: prefix, environment and key id."""
    return f"{PREFIX}_{environment}_{key_id}"


def key_id_of(given: str) -> str:
    """Return the key id in what a person typed: the key id alone, or the display prefix `ipk_live_<id>`."""
    given = given.strip()
    for environment in ENVIRONMENTS:
        prefix = display_prefix(environment, "")
        if given.startswith(prefix):
            return given[len(prefix) :]
    return given


def generate(environment: str, key_id: str | None = None) -> tuple[str, str]:
    """Return `(key_id, plaintext key)` for a new key in `environment` (keeping a reserved `key_id`)."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {environment!r}")
    key_id = key_id or random_base62(KEY_ID_LENGTH)
    body = display_prefix(environment, key_id) + random_base62(SECRET_LENGTH)
    return key_id, body + crc32_base62(body)


def parse(raw: str) -> ParsedKey | None:
    """Return the parsed key, or None when the format or the checksum is wrong."""
    if not isinstance(raw, str) or len(raw) != KEY_LENGTH:
        return None
    match = _KEY_RE.match(raw)
    if match is None or crc32_base62(raw[:-CHECKSUM_LENGTH]) != match["checksum"]:
        return None
    return ParsedKey(environment=match["env"], key_id=match["key_id"], raw=raw)


def looks_like_api_key(value: str) -> bool:
    """Return whether `value` claims to be an API key (so other authenticators should not try it)."""
    return value.startswith(f"{PREFIX}_")


def holds_whole_key(text: str) -> bool:
    """Return whether `text` holds something shaped like a whole key (a display prefix does not)."""
    return len(text) >= KEY_LENGTH and _WHOLE_KEY_RE.search(text) is not None
