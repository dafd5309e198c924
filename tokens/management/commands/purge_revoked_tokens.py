"""Delete revocation-list entries whose tokens have expired anyway (safe from cron)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from tokens.protocol.services import revoked_tokens_purge


class Command(BaseCommand):
    help = "Delete RevokedToken rows whose tokens have expired; run daily from cron."

    def handle(self, *args, **options):
        deleted = revoked_tokens_purge()
        self.stdout.write(f"Purged {deleted} expired revocation entr{'y' if deleted == 1 else 'ies'}.")
