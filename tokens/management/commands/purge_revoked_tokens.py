"""Delete revocation-list entries whose tokens have expired anyway (safe from cron)."""

from __future__ import annotations

from portal.management.base import PortalCommand
from tokens.protocol.services import revoked_tokens_purge


class Command(PortalCommand):
    help = "Delete RevokedToken rows whose tokens have expired; run daily from cron."

    def handle(self, *args, **options):
        deleted = revoked_tokens_purge()
        self.stdout.write(f"Purged {deleted} expired revocation entr{'y' if deleted == 1 else 'ies'}.")
