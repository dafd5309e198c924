"""`manage.py reencrypt_signing_keys --old-key=KEY`: move signing keys to a new encryption key."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tokens.services import signing_keys_reencrypt

OLD_KEY_VARIABLE = "PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY"


class Command(BaseCommand):
    help = (
        "Re-encrypt every JWT signing key under the current PORTAL_SIGNING_KEY_ENCRYPTION_KEY. "
        f"Give the previous key(s) with --old-key or in {OLD_KEY_VARIABLE} (comma-separated; the "
        "variable keeps the key out of the process list and shell history)."
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
        if not old_keys:
            raise CommandError(f"Give the previous encryption key with --old-key or {OLD_KEY_VARIABLE}.")
        try:
            count = signing_keys_reencrypt(old_encryption_keys=old_keys, actor=None)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Re-encrypted {count} signing key(s) under the current encryption key.")
