"""`manage.py send_credential_notices`: suspend, complete due cut-overs, then email each due notice once."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from credentials.cutover import cutovers_complete
from credentials.governance.services import credential_notices_send, credential_policies_apply


class Command(BaseCommand):
    help = (
        "Suspend credentials orphaned or overdue past their organisation's grace, revoke moved API keys "
        "whose automatic cut-over is due (complete_cutovers), then email the lifecycle notices that are "
        "due (each once). Safe to run from cron at any frequency."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-suspend", action="store_true", help="Only send notices; suspend and revoke nothing."
        )

    def handle(self, *args, **options):
        suspended = [] if options["no_suspend"] else credential_policies_apply()
        revoked = [] if options["no_suspend"] else cutovers_complete()
        sent = credential_notices_send()
        self.stdout.write(
            f"Suspended {len(suspended)} credential(s); revoked {len(revoked)} moved API key(s) after "
            f"their cut-over; sent {sent} notice(s)."
        )
