"""Move every secret stored encrypted (signing keys, webhook secrets, MFA secrets) to the current key.

Each app registers the re-encryption of its own stored secrets (`encrypted_store_register`,
from its `AppConfig.ready`); `secrets_reencrypt` runs them all in one transaction, which
`manage.py reencrypt_secrets` calls after PORTAL_SIGNING_KEY_ENCRYPTION_KEY was changed
(docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from allauth.mfa.models import Authenticator
from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.db import transaction

from portal.account_security.adapters import MFA_CIPHER
from portal.infra.crypto import check_fernet_keys
from portal.models import User
from portal.services.audit import audit_log


@dataclass(frozen=True)
class EncryptedStore:
    """One kind of stored secret: how to name it in output, and how to re-encrypt all of it.

    `reencrypt(*, old_encryption_keys, actor) -> int` re-encrypts every row not yet under the
    current key, returns how many changed, writes its own audit event and raises
    ValidationError (changing nothing) when a ciphertext opens with none of the keys.
    """

    name: str
    unit: str
    reencrypt: Callable[..., int]


_STORES: dict[str, EncryptedStore] = {}


def encrypted_store_register(name: str, *, unit: str, reencrypt: Callable[..., int]) -> None:
    """Register a kind of encrypted secret for `secrets_reencrypt` (idempotent per name)."""
    _STORES[name] = EncryptedStore(name=name, unit=unit, reencrypt=reencrypt)


def encrypted_stores() -> list[EncryptedStore]:
    """Return the registered stores, in registration order."""
    return list(_STORES.values())


@transaction.atomic
def secrets_reencrypt(
    *, old_encryption_keys: Iterable[str], actor: User | None
) -> list[tuple[EncryptedStore, int]]:
    """Re-encrypt every registered store under the current key; return `(store, count)` pairs.

    All or nothing across every store: one ciphertext that neither the current key nor any of
    `old_encryption_keys` opens leaves everything as it was. Safe to re-run (rows already
    under the current key are left alone). Each store writes one audit event when it changed.
    """
    try:
        previous = check_fernet_keys(old_encryption_keys)
    except ValueError:
        raise ValidationError(
            "An old encryption key is not a Fernet key (32 url-safe base64 bytes)."
        ) from None
    return [
        (store, store.reencrypt(old_encryption_keys=previous, actor=actor)) for store in encrypted_stores()
    ]


def ciphertext_reencrypt(
    reencrypt: Callable[..., bytes | None],
    ciphertext: bytes | memoryview,
    *,
    previous: Iterable[str],
    what: str,
) -> bytes | None:
    """Return `ciphertext` under the current key through `reencrypt` (a SecretCipher's), or None when it is.

    Raises ValidationError naming `what` when neither the current key nor any of `previous`
    opens it, so that the caller's transaction changes nothing.
    """
    try:
        return reencrypt(ciphertext, previous=previous)
    except InvalidToken:
        raise ValidationError(
            f"{what} opens with neither the current key nor any old key given; nothing was changed."
        ) from None


def reencrypted_audit(*, action: str, actor: User | None, changed: list, unit: str, ids_key: str) -> None:
    """Write the one audit event of a store's re-encryption, when anything changed."""
    if changed:
        audit_log(
            action=action,
            actor=actor,
            organization=None,
            target_label=f"{len(changed)} {unit}",
            extra={ids_key: changed},
        )


# --- MFA secrets (django-allauth authenticators) -------------------------------------------------

#: The JSON members of an allauth `Authenticator.data` that the MFA adapter encrypts.
_MFA_ENCRYPTED = {"totp": ("secret",), "recovery_codes": ("seed", "migrated_codes")}


def mfa_secrets_reencrypt(*, old_encryption_keys: Iterable[str], actor: User | None) -> int:
    """Re-encrypt TOTP secrets and recovery-code seeds; return how many authenticators changed."""
    old_encryption_keys = list(old_encryption_keys)

    def moved(value: str, authenticator) -> str | None:
        token = ciphertext_reencrypt(
            MFA_CIPHER.reencrypt,
            value.encode(),
            previous=old_encryption_keys,
            what=f"An MFA secret of authenticator {authenticator.pk}",
        )
        return token.decode() if token is not None else None

    changed: list[int] = []
    authenticators = Authenticator.objects.select_for_update().filter(type__in=_MFA_ENCRYPTED).order_by("pk")
    for authenticator in authenticators:
        data, dirty = dict(authenticator.data), False
        for member in _MFA_ENCRYPTED[authenticator.type]:
            value = data.get(member)
            if isinstance(value, str):
                new = moved(value, authenticator)
                if new is not None:
                    data[member], dirty = new, True
            elif isinstance(value, list):
                values = [moved(v, authenticator) for v in value]
                if any(v is not None for v in values):
                    data[member] = [new or old for new, old in zip(values, value, strict=True)]
                    dirty = True
        if dirty:
            Authenticator.objects.filter(pk=authenticator.pk).update(data=data)
            changed.append(authenticator.pk)
    reencrypted_audit(
        action="portal.mfa.secrets_reencrypted",
        actor=actor,
        changed=changed,
        unit="MFA authenticator(s)",
        ids_key="authenticator_ids",
    )
    return len(changed)
