"""JWT signing keys: generation, encryption at rest, the per-process key cache and the JWKS.

Private keys are decrypted and parsed once per process and kept as `cryptography` key
objects (parsing a PEM per token would cost ~40 ms). Each process re-checks which key is
active at most every PORTAL_SIGNING_KEY_REFRESH_SECONDS (default 5 s) through Django's
cache, whose hint lives as long: a rotation reaches every app server within twice that
interval (a hint read from the database just before the rotation committed may stand for one
more); the rotating process switches at once.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.core.cache import cache
from django.db.models import Case, Q, Value, When
from django.utils import timezone
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from portal.infra.crypto import SecretCipher, encryption_key_as_is
from tokens.jwk import PRIVATE_MEMBERS, thumbprint
from tokens.models import SigningKey

ACTIVE_KID_CACHE_KEY = "tokens:signing-key:active-kid"


@dataclass(frozen=True)
class LoadedKey:
    """A decrypted signing key ready to sign."""

    kid: str
    algorithm: str
    private_key: object


#: Private keys are encrypted under the configured key itself; old keys still decrypt while
#: `reencrypt_secrets` moves the stored keys over (docs/operations.md).
CIPHER = SecretCipher(label="signing keys", derive=encryption_key_as_is)


def public_jwk_for(public_key, algorithm: str) -> dict:
    """Return the public JWK (RFC 7517) of a key, with `kid` set to its RFC 7638 thumbprint."""
    if algorithm == SigningKey.Algorithm.RS256:
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
        required = {k: jwk[k] for k in ("e", "kty", "n")}
    else:
        jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
        required = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    # RFC 7517 §4.3: `use` and `key_ops` should not be used together; publish `use` only.
    jwk = {k: v for k, v in jwk.items() if k not in PRIVATE_MEMBERS and k != "key_ops"}
    jwk.update({"kid": thumbprint(required), "alg": algorithm, "use": "sig"})
    return jwk


def generate_key_material(algorithm: str) -> tuple[bytes, dict]:
    """Return `(encrypted PKCS#8 private key, public JWK)` for a new key pair."""
    if algorithm == SigningKey.Algorithm.RS256:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == SigningKey.Algorithm.ES256:
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"Unsupported signing algorithm {algorithm!r}; use RS256 or ES256.")
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return CIPHER.encrypt(pem), public_jwk_for(private_key.public_key(), algorithm)


def decrypt_private_key(key: SigningKey):
    """Decrypt and parse a stored private key into a `cryptography` key object."""
    pem = CIPHER.decrypt(key.encrypted_private_key)
    return serialization.load_pem_private_key(pem, password=None)


class _KeyCache:
    """The process-wide signing key, refreshed when another process rotates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: LoadedKey | None = None
        self._checked_at = 0.0

    def clear(self) -> None:
        with self._lock:
            self._loaded = None
            self._checked_at = 0.0

    def get(self, create_first: Callable[[], SigningKey]) -> LoadedKey:
        now = time.monotonic()
        refresh = settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS
        loaded = self._loaded
        if loaded is not None and now - self._checked_at < refresh:
            return loaded
        # The shared cache holds the active kid for at most `refresh` seconds; the
        # database stays the source of truth, so a stale entry heals itself.
        active_kid = cache.get(ACTIVE_KID_CACHE_KEY)
        if active_kid is None:
            active_kid = (
                SigningKey.objects.filter(status=SigningKey.Status.ACTIVE)
                .values_list("kid", flat=True)
                .first()
            )
            if active_kid is not None:
                cache.set(ACTIVE_KID_CACHE_KEY, active_kid, timeout=refresh)
        if loaded is not None and active_kid == loaded.kid:
            self._checked_at = now
            return loaded
        with self._lock:
            key = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
            if key is None:
                key = create_first()
            if self._loaded is None or self._loaded.kid != key.kid:
                self._loaded = LoadedKey(key.kid, key.algorithm, decrypt_private_key(key))
            self._checked_at = now
            return self._loaded


_key_cache = _KeyCache()


def loaded_key(*, create_first: Callable[[], SigningKey]) -> LoadedKey:
    """Return this process's decrypted active key, re-checked every PORTAL_SIGNING_KEY_REFRESH_SECONDS.

    `create_first` makes the first key when none exists (`signing.services.active_signing_key`
    passes `signing_key_ensure`, so this module never imports the services that import it).
    """
    return _key_cache.get(create_first)


def forget_loaded_key() -> None:
    """Drop this process's loaded key and the shared active-kid hint so the next token re-reads it."""
    _key_cache.clear()
    cache.delete(ACTIVE_KID_CACHE_KEY)


def published_keys_queryset(now: datetime | None = None):
    """Return the keys the JWKS publishes: the active one, the staged next one, and retired ones
    still in use.

    The active key comes first (a staged key is newer, but clients that take the set's first
    key must get the one that signs), then the staged one, then retired ones, newest first.
    """
    now = now or timezone.now()
    signing_first = Case(
        When(status=SigningKey.Status.ACTIVE, then=Value(0)),
        When(status=SigningKey.Status.NEXT, then=Value(1)),
        default=Value(2),
    )
    return SigningKey.objects.filter(
        Q(status__in=[SigningKey.Status.ACTIVE, SigningKey.Status.NEXT]) | Q(publish_until__gt=now)
    ).order_by(signing_first, "-created_at", "-id")


def jwks_document() -> dict:
    """Return the public JWK Set (public members only)."""
    keys = []
    for key in published_keys_queryset():
        keys.append({k: v for k, v in key.public_jwk.items() if k not in PRIVATE_MEMBERS})
    return {"keys": keys}


# Public keys the portal's own verifier has looked up, by kid: (PyJWK, monotonic expiry).
#: Longer than any `kid` the portal makes (an RFC 7638 thumbprint is 43 characters).
MAX_KID_LENGTH = 128
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
# Entries live briefly so a key removed by an operator stops verifying within a minute.
_PUBLIC_KEY_TTL_SECONDS = 60
_public_keys: dict[str, tuple[PyJWK, float]] = {}


def local_public_key(kid: str) -> PyJWK | None:
    """Return the published public key for `kid`, from a short per-process cache or the database.

    Used by the portal's own verifier instead of fetching its JWKS over HTTP.
    """
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH or not _PRINTABLE_ASCII.fullmatch(kid):
        # No published key has it (they are thumbprints); and the database refuses a NUL or a
        # lone surrogate in a query.
        return None
    now = time.monotonic()
    entry = _public_keys.get(kid)
    if entry is not None and entry[1] > now:
        return entry[0]
    key = published_keys_queryset().filter(kid=kid).only("public_jwk").first()
    if key is None:
        _public_keys.pop(kid, None)
        return None
    jwk = PyJWK(key.public_jwk)
    if len(_public_keys) > 64:
        _public_keys.clear()
    _public_keys[kid] = (jwk, now + _PUBLIC_KEY_TTL_SECONDS)
    return jwk


def forget_public_keys() -> None:
    """Drop the cached public keys (tests, key removal)."""
    _public_keys.clear()
