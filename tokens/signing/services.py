"""Writes for JWT signing keys: create, stage, rotate, withdraw, re-encrypt; one audit event each."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from portal.models import AuditEvent, User
from portal.services.audit import audit_log
from portal.services.encryption import ciphertext_reencrypt, reencrypted_audit
from tokens.models import (
    MAX_TOKEN_LIFETIME,
    SigningKey,
)
from tokens.signing import keys

# A retired signing key stays published this long: the longest token lifetime plus clock leeway,
# plus (`retired_key_publish_for`) the time other app servers may still sign with it.
RETIRED_KEY_PUBLISH_FOR = timedelta(seconds=MAX_TOKEN_LIFETIME + 300)


def retired_key_publish_for() -> timedelta:
    """Return how long a key retired now stays in the JWKS.

    Other app servers notice a rotation within PORTAL_SIGNING_KEY_REFRESH_SECONDS (twice that
    through the shared kid hint, tokens.signing.keys) and sign with the old key until then; the
    last token one of them signs must expire before the key leaves the JWKS.
    """
    return RETIRED_KEY_PUBLISH_FOR + timedelta(seconds=2 * settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS)


def _create_signing_key(
    algorithm: str,
    material: tuple[bytes, dict] | None = None,
    *,
    status: str = SigningKey.Status.ACTIVE,
) -> SigningKey:
    encrypted, jwk = material or keys.generate_key_material(algorithm)
    return SigningKey.objects.create(
        kid=jwk["kid"], algorithm=algorithm, encrypted_private_key=encrypted, public_jwk=jwk, status=status
    )


def _create_audited(
    action: str,
    *,
    actor: User | None,
    algorithm: str,
    material: tuple[bytes, dict] | None = None,
    status: str = SigningKey.Status.ACTIVE,
) -> SigningKey:
    """Create a key and its audit event in one transaction (IntegrityError: its status was taken)."""
    with transaction.atomic():
        key = _create_signing_key(algorithm, material, status=status)
        audit_log(
            action=action,
            actor=actor,
            organization=None,
            target=key,
            extra={"kid": key.kid, "algorithm": algorithm},
        )
    return key


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in SigningKey.Algorithm.values:
        raise ValidationError(f"Unsupported algorithm {algorithm!r}; use RS256 or ES256.")


def _already_staged(staged: SigningKey | None) -> ValidationError:
    which = f"Key {staged.kid} ({staged.algorithm})" if staged else "Another key"
    return ValidationError(
        f"{which} is already staged as the next signing key; rotate to it, or withdraw it first.",
        code="staged",
    )


def signing_key_ensure(algorithm: str = SigningKey.Algorithm.RS256) -> SigningKey:
    """Return the active signing key, creating the first one when none exists."""
    key = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
    if key is not None:
        return key
    try:
        key = _create_audited("tokens.signing_key.created", actor=None, algorithm=algorithm)
    except IntegrityError:
        # Another process created the first key at the same moment: use theirs.
        key = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)
    return key


def active_signing_key() -> keys.LoadedKey:
    """Return the active signing key, decrypted, ready to sign (creating the first one when none exists)."""
    return keys.loaded_key(create_first=signing_key_ensure)


def signing_key_staged() -> SigningKey | None:
    """Return the staged next signing key (published, not signing yet), if there is one."""
    return SigningKey.objects.filter(status=SigningKey.Status.NEXT).first()


def signing_key_stage(*, actor: User | None, algorithm: str = SigningKey.Algorithm.RS256) -> SigningKey:
    """Publish a new key in the JWKS without signing with it; `signing_key_rotate` promotes it.

    Verifiers that cache the JWKS (for up to PORTAL_JWKS_MAX_AGE_SECONDS, or a PyJWT
    `PyJWKClient` that refuses unknown kids for 30 s after each fetch) then hold the key before
    the first token it signs. Refuse (code "staged") while another key is staged; the
    one-next-key constraint settles two stagings at the same moment.
    """
    _check_algorithm(algorithm)
    staged = signing_key_staged()
    if staged is not None:
        raise _already_staged(staged)  # before generating a key pair for nothing
    material = keys.generate_key_material(algorithm)  # slow (RSA): outside the transaction
    try:
        key = _create_audited(
            "tokens.signing_key.staged",
            actor=actor,
            algorithm=algorithm,
            material=material,
            status=SigningKey.Status.NEXT,
        )
    except IntegrityError:
        # A concurrent staging committed first (the one-next-key constraint).
        raise _already_staged(signing_key_staged()) from None
    return key


def signing_key_rotate(
    *,
    actor: User | None,
    algorithm: str | None = None,
    withdraw_previous_after: timedelta | None = None,
) -> tuple[SigningKey, SigningKey | None]:
    """Retire the active key (kept in the JWKS until its tokens expire) and sign with the next one.

    The next key is the staged one (`signing_key_stage`) when there is one, else a new key of
    `algorithm` (RS256 when not given). Asking for an algorithm other than the staged key's is
    refused (code "staged_algorithm"): withdraw the staged key first.

    `withdraw_previous_after` (a leaked key): the retired key leaves the JWKS that long after the
    rotation instead of once its tokens have expired. It is recorded in this transaction, so the
    key leaves even if whoever asked never gets to `signing_key_unpublish` (a command stopped
    while it waits for the other app servers to switch).
    """
    if algorithm is not None:
        _check_algorithm(algorithm)
    if withdraw_previous_after is not None and withdraw_previous_after < timedelta(0):
        raise ValueError("withdraw_previous_after cannot be negative.")
    # A new key pair only when no key is staged; slow (RSA), so outside the transaction. Should
    # the staged key be withdrawn meanwhile, the rotation makes one inside (`_create_signing_key`).
    material = None
    if signing_key_staged() is None:
        material = keys.generate_key_material(algorithm or SigningKey.Algorithm.RS256)
    for attempt in range(5):
        try:
            with transaction.atomic():
                key, previous = _signing_key_rotate_once(
                    actor=actor,
                    algorithm=algorithm,
                    material=material,
                    publish_previous_for=(
                        retired_key_publish_for()
                        if withdraw_previous_after is None
                        else withdraw_previous_after
                    ),
                )
        except IntegrityError:
            # A concurrent rotation committed first: the row we locked is no longer the
            # active one. The one-active-key constraint caught it; try again on top of it.
            if attempt == 4:
                raise
            continue
        break
    # Switch this process now (its transaction already sees the new key) and again after
    # commit; other processes notice within PORTAL_SIGNING_KEY_REFRESH_SECONDS.
    keys.forget_loaded_key()
    transaction.on_commit(keys.forget_loaded_key)
    return key, previous


def _signing_key_rotate_once(
    *,
    actor: User | None,
    algorithm: str | None,
    material: tuple[bytes, dict] | None,
    publish_previous_for: timedelta,
) -> tuple[SigningKey, SigningKey | None]:
    now = timezone.now()
    # Lock the active key, then the staged one (the order every writer takes them in).
    previous = SigningKey.objects.select_for_update().filter(status=SigningKey.Status.ACTIVE).first()
    staged = SigningKey.objects.select_for_update().filter(status=SigningKey.Status.NEXT).first()
    if staged is not None and algorithm is not None and staged.algorithm != algorithm:
        raise ValidationError(
            f"Key {staged.kid} is staged as the next signing key and is {staged.algorithm}, not "
            f"{algorithm}; rotate to it, or withdraw it before rotating to a new {algorithm} key.",
            code="staged_algorithm",
        )
    if previous is not None:
        previous.status = SigningKey.Status.RETIRED
        previous.retired_at = now
        previous.publish_until = now + publish_previous_for
        previous.save(update_fields=["status", "retired_at", "publish_until", "updated_at"])
    if staged is not None:
        key = staged
        key.status = SigningKey.Status.ACTIVE
        key.save(update_fields=["status", "updated_at"])
    else:
        key = _create_signing_key(algorithm or SigningKey.Algorithm.RS256, material)
    audit_log(
        action="tokens.signing_key.rotated",
        actor=actor,
        organization=None,
        target=key,
        extra={
            "kid": key.kid,
            "algorithm": key.algorithm,
            "previous_kid": previous.kid if previous else None,
            "previous_published_until": previous.publish_until.isoformat() if previous else None,
            # How long verifiers could fetch the key before it signed (None: a key made now).
            "staged_at": staged.created_at.isoformat() if staged else None,
            "published_for_seconds": int((now - staged.created_at).total_seconds()) if staged else None,
        },
    )
    return key, previous


def signing_keys_reencrypt(*, old_encryption_keys: Iterable[str], actor: User | None) -> int:
    """Re-encrypt every stored signing key under the current PORTAL_SIGNING_KEY_ENCRYPTION_KEY.

    Each private key is decrypted with the current key or one of `old_encryption_keys` and
    encrypted again with the current one; keys already under it are left alone, so running
    it twice is harmless. All or nothing: one key that no given key opens changes nothing.
    Return how many keys were re-encrypted (one audit event when any were). Run through
    `portal.services.encryption.secrets_reencrypt`, which checks the old keys.
    """
    changed: list[str] = []
    with transaction.atomic():
        for key in SigningKey.objects.select_for_update().order_by("pk"):
            token = ciphertext_reencrypt(
                keys.CIPHER.reencrypt,
                key.encrypted_private_key,
                previous=old_encryption_keys,
                what=f"Signing key {key.kid}",
            )
            if token is None:
                continue  # already under the current key
            key.encrypted_private_key = token
            key.save(update_fields=["encrypted_private_key", "updated_at"])
            changed.append(key.kid)
        reencrypted_audit(
            action="tokens.signing_key.reencrypted",
            actor=actor,
            changed=changed,
            unit="signing key(s)",
            ids_key="kids",
        )
        if changed:
            transaction.on_commit(keys.forget_loaded_key)
    return len(changed)


_UNPUBLISHED = "tokens.signing_key.unpublished"


def _withdrawal_recorded(key: SigningKey) -> bool:
    return AuditEvent.objects.filter(
        action=_UNPUBLISHED, target_type=SigningKey._meta.label_lower, target_id=str(key.pk)
    ).exists()


def signing_key_withdrawal_unfinished() -> SigningKey | None:
    """Return the key the latest rotation retired to leave the JWKS early (`withdraw_previous_after`)
    when its withdrawal was never recorded: a `rotate_signing_key --unpublish-previous` stopped
    while it waited.

    The key leaves the JWKS at its `publish_until` all the same; what is left is to record it
    (`signing_key_unpublish`), not to rotate again, which would withdraw the key that replaced
    it. Only the latest rotation counts, and only for RETIRED_KEY_PUBLISH_FOR after it (a key
    retired the ordinary way would have left the JWKS by then too), so an interruption long past
    never stands in for a new emergency rotation.
    """
    now = timezone.now()
    # Retired by a rotation: a withdrawn staged key leaves the JWKS the moment it retires.
    latest = (
        SigningKey.objects.filter(status=SigningKey.Status.RETIRED, publish_until__gt=F("retired_at"))
        .order_by("-retired_at", "-id")
        .first()
    )
    if (
        latest is None
        or latest.publish_until - latest.retired_at >= RETIRED_KEY_PUBLISH_FOR  # retired the ordinary way
        or now - latest.retired_at >= RETIRED_KEY_PUBLISH_FOR
        or _withdrawal_recorded(latest)
    ):
        return None
    return latest


@transaction.atomic
def signing_key_unpublish(*, key: SigningKey, actor: User | None) -> SigningKey:
    """Withdraw a retired key from the JWKS now, so tokens it signed stop validating (a leaked key).

    A staged key is withdrawn too (it becomes retired, never having signed), which undoes a
    staging. App servers drop their cached copy of the public key within a minute.

    Idempotent: a key whose withdrawal is recorded already is left as it is (no second audit
    event). A key that left the JWKS by itself (its `publish_until` passed, as a rotation with
    `withdraw_previous_after` schedules) keeps that time and gets its audit event.
    """
    key = SigningKey.objects.select_for_update().get(pk=key.pk)
    if key.status == SigningKey.Status.ACTIVE:
        raise ValidationError("The active key cannot be withdrawn; rotate first.")
    if _withdrawal_recorded(key):
        return key
    now = timezone.now()
    if key.publish_until is None or key.publish_until > now:
        key.publish_until = now
    if key.status == SigningKey.Status.NEXT:
        key.status = SigningKey.Status.RETIRED
        key.retired_at = now
    key.save(update_fields=["status", "retired_at", "publish_until", "updated_at"])
    audit_log(
        action=_UNPUBLISHED,
        actor=actor,
        organization=None,
        target=key,
        extra={"kid": key.kid},
    )
    transaction.on_commit(keys.forget_public_keys)
    return key
