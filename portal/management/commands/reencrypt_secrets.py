"""`manage.py reencrypt_secrets [--old-key=KEY …]`: move every encrypted secret to the current key."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from portal.management.base import PortalCommand
from portal.services.encryption import secrets_reencrypt

OLD_KEY_VARIABLE = "PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY"


class Command(PortalCommand):
    help = (
        "Re-encrypt every secret stored encrypted (JWT signing keys, webhook signing secrets, MFA "
        "secrets) under the current PORTAL_SIGNING_KEY_ENCRYPTION_KEY. Give the previous key(s) with "
        f"--old-key or in {OLD_KEY_VARIABLE} (comma-separated; the variable keeps the key out of the "
        "process list and shell history). All or nothing; safe to re-run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--old-key",
            action="append",
            default=[],
            help="A previous Fernet key; repeat for several. Defaults to the environment variable.",
        )

    def handle(self, *args, **options):
        old_keys = options["old_key"] or settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS
        try:
            results = secrets_reencrypt(old_encryption_keys=old_keys, actor=None)
        except ValidationError as exc:
            message = " ".join(exc.messages)
            if not old_keys:
                message += f" Give the previous encryption key with --old-key or {OLD_KEY_VARIABLE}."
            raise CommandError(message) from None
        for store, count in results:
            self.stdout.write(f"Re-encrypted {count} {store.unit} under the current encryption key.")
