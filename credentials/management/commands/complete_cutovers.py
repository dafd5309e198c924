"""`manage.py complete_cutovers`: revoke moved API keys whose owners opted in, once they went quiet."""

from __future__ import annotations

from credentials.api_keys.cutover import cutovers_complete
from portal.management.base import PortalCommand


class Command(PortalCommand):
    help = (
        "Revoke each API key moved to an M2M application whose owner chose 'revoke automatically', "
        "once the application is active and the key went unused for its quiet period. Idempotent; "
        "run it every few minutes (cron, systemd timer)."
    )

    def handle(self, *args, **options):
        revoked = cutovers_complete()
        self.stdout.write(f"Revoked {len(revoked)} moved API key(s) after their cut-over.")
