"""Authenticator-app codes accepted once each, recorded in the database (RFC 6238 section 5.2).

allauth marks an accepted TOTP code used with `cache.add`. While Redis is down ResilientRedisCache
answers every `add` with False, so every right code was refused ("Incorrect code."), and sign-in
with an authenticator app stopped. The portal records instead the last accepted time step in the
authenticator's own row (`Authenticator.data["last_step"]`, beside the encrypted secret), under a
row lock, and accepts a code only for a newer time step: a code, or an older one from the
tolerance window, works once, with or without Redis.
"""

from __future__ import annotations

from allauth.core.internal.cryptokit import compare_user_code
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal import auth as allauth_totp
from allauth.mfa.utils import decrypt
from django.db import transaction

#: The member of `Authenticator.data` holding the last accepted time step (a counter, not a code).
LAST_STEP = "last_step"


def totp_code_step(secret: str, code: str) -> int | None:
    """Return the time step within allauth's tolerance window whose code `code` is, or None."""
    for step in allauth_totp.yield_hotp_counters_from_time():
        expected = allauth_totp.format_hotp_value(allauth_totp.hotp_value(secret, step))
        if compare_user_code(actual=code, expected=expected):
            return step
    return None


@transaction.atomic
def totp_step_spend(*, authenticator: Authenticator, step: int) -> bool:
    """Record `step` as the authenticator's last accepted time step; return False if it is not newer.

    The row is locked and read afresh, and only `last_step` changes: the secret in the row may have
    been re-encrypted meanwhile (`manage.py reencrypt_secrets`, which locks the rows too).
    """
    locked = Authenticator.objects.select_for_update().filter(pk=authenticator.pk).first()
    if locked is None:  # removed meanwhile
        return False
    last = locked.data.get(LAST_STEP)
    if isinstance(last, int) and step <= last:
        return False
    data = {**locked.data, LAST_STEP: step}
    Authenticator.objects.filter(pk=locked.pk).update(data=data)
    authenticator.data = data
    return True


def totp_validate_code(totp: allauth_totp.TOTP, code: str) -> bool:
    """Check a code against the authenticator app's secret and accept its time step once.

    Stands in for allauth's `TOTP.validate_code` (`PortalConfig.ready`). The secret is decrypted by
    allauth's helper, that is by the portal's MFA adapter, as allauth does it.
    """
    bypass = mfa_settings.TOTP_INSECURE_BYPASS_CODE  # allauth refuses one outside DEBUG
    if bypass and code == bypass:
        return True
    step = totp_code_step(decrypt(totp.instance.data["secret"]), code)
    return step is not None and totp_step_spend(authenticator=totp.instance, step=step)
