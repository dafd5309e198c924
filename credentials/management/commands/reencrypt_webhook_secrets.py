"""`manage.py reencrypt_webhook_secrets`: move webhook signing secrets to the current encryption key."""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError

from credentials.webhooks.services import webhook_secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every webhook endpoint's signing secret under PORTAL_SIGNING_KEY_ENCRYPTION_KEY, "
        "reading old ciphertexts with PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY. All or nothing; safe to re-run."
    )

    def handle(self, *args, **options):
        try:
            count = webhook_secrets_reencrypt(actor=None)
        except InvalidToken:
            raise CommandError(
                "A webhook secret opens with none of the configured keys: list the old key in "
                "PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY. Nothing was changed."
            ) from None
        self.stdout.write(f"Re-encrypted {count} webhook endpoint secret(s).")
