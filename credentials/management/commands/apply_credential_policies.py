"""`manage.py apply_credential_policies`: suspend credentials orphaned or overdue past their grace."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from credentials.governance.reviews import credential_policies_apply


class Command(BaseCommand):
    help = "Suspend credentials orphaned or overdue for review past their organisation's grace (idempotent)."

    def handle(self, *args, **options):
        suspended = credential_policies_apply()
        self.stdout.write(f"Suspended {len(suspended)} credential(s).")
