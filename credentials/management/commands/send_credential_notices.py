"""`manage.py send_credential_notices`: apply the suspension rules, then email each due notice once."""

from __future__ import annotations

from credentials.governance.notices import credential_notices_send
from credentials.governance.reviews import credential_policies_apply
from portal.management.base import PortalCommand


class Command(PortalCommand):
    help = (
        "Suspend credentials orphaned or overdue past their organisation's grace, then email the "
        "lifecycle notices that are due (each once). Safe to run from cron at any frequency."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-suspend", action="store_true", help="Only send notices; suspend nothing.")

    def handle(self, *args, **options):
        suspended = [] if options["no_suspend"] else credential_policies_apply()
        sent = credential_notices_send()
        self.stdout.write(f"Suspended {len(suspended)} credential(s); sent {sent} notice(s).")
