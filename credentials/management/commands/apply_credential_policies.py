"""`manage.py apply_credential_policies`: suspend credentials orphaned or overdue past their grace."""

from __future__ import annotations

from credentials.governance.reviews import credential_policies_apply
from portal.management.base import PortalCommand


class Command(PortalCommand):
    help = "Suspend credentials orphaned or overdue for review past their organisation's grace (idempotent)."

    def handle(self, *args, **options):
        suspended = credential_policies_apply()
        self.stdout.write(f"Suspended {len(suspended)} credential(s).")
