"""JOSE helpers shared by signing keys, client public keys and federation: private members, thumbprints."""

from __future__ import annotations

import base64
import hashlib
import json

PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def thumbprint(required_members: dict) -> str:
    """Return the RFC 7638 SHA-256 thumbprint (base64url) of a JWK's required members."""
    canonical = json.dumps(required_members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
