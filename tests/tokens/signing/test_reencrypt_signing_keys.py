"""`manage.py reencrypt_signing_keys`: signing keys move to a new encryption key, all or nothing."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import override_settings

from portal.models import AuditEvent
from tokens.models import SigningKey
from tokens.signing import keys
from tokens.signing import services as signing_services
from tokens.signing.services import signing_key_ensure, signing_key_rotate

pytestmark = pytest.mark.django_db

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


def _stored_under(encryption_key: str) -> list[bool]:
    fernet = Fernet(encryption_key.encode())
    result = []
    for key in SigningKey.objects.order_by("pk"):
        try:
            fernet.decrypt(bytes(key.encrypted_private_key))
            result.append(True)
        except Exception:
            result.append(False)
    return result


def test_reencrypt_moves_every_key_to_the_new_encryption_key_once():
    with override_settings(PORTAL_SIGNING_KEY_ENCRYPTION_KEY=OLD):
        signing_key_ensure()
        signing_key_rotate(actor=None, algorithm=SigningKey.Algorithm.ES256)  # active + retired
    assert _stored_under(OLD) == [True, True]
    with override_settings(PORTAL_SIGNING_KEY_ENCRYPTION_KEY=NEW):
        out = io.StringIO()
        call_command("reencrypt_signing_keys", f"--old-key={OLD}", stdout=out)
        assert "Re-encrypted 2 signing key(s)" in out.getvalue()
        assert _stored_under(NEW) == [True, True]
        assert _stored_under(OLD) == [False, False]
        keys.forget_loaded_key()
        assert (
            signing_services.active_signing_key().kid == SigningKey.objects.get(status="active").kid
        )  # decrypts
        out = io.StringIO()
        call_command("reencrypt_signing_keys", f"--old-key={OLD}", stdout=out)  # idempotent
        assert "Re-encrypted 0 signing key(s)" in out.getvalue()
    event = AuditEvent.objects.get(action="tokens.signing_key.reencrypted")
    assert OLD not in str(event.extra) and NEW not in str(event.extra)
    keys.forget_loaded_key()


def test_reencrypt_with_the_wrong_old_key_changes_nothing():
    with override_settings(PORTAL_SIGNING_KEY_ENCRYPTION_KEY=OLD):
        signing_key_ensure()
    before = bytes(SigningKey.objects.get().encrypted_private_key)
    with override_settings(PORTAL_SIGNING_KEY_ENCRYPTION_KEY=NEW):
        with pytest.raises(CommandError, match="nothing was changed"):
            call_command("reencrypt_signing_keys", f"--old-key={Fernet.generate_key().decode()}")
        with pytest.raises(CommandError, match="not a Fernet key"):
            call_command("reencrypt_signing_keys", "--old-key=not-a-key")
        with pytest.raises(CommandError, match="--old-key"):
            call_command("reencrypt_signing_keys")
    # While the old key is configured beside the new one, the stored keys still open (no outage),
    # and the command takes the old key from there.
    with override_settings(
        PORTAL_SIGNING_KEY_ENCRYPTION_KEY=NEW, PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS=[OLD]
    ):
        keys.forget_loaded_key()
        assert signing_services.active_signing_key().kid == SigningKey.objects.get().kid
        call_command("reencrypt_signing_keys", stdout=io.StringIO())
    assert bytes(SigningKey.objects.get().encrypted_private_key) != before
    assert AuditEvent.objects.filter(action="tokens.signing_key.reencrypted").count() == 1
    keys.forget_loaded_key()
