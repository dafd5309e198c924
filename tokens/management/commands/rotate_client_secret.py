"""`manage.py rotate_client_secret --client-id ID [--overlap-hours N] [--json]`: a new secret, shown once."""

from __future__ import annotations

import json
from datetime import timedelta

from django.core.management.base import CommandError

from credentials.cli import service_refusals
from credentials.governance.org_policy import policy_for
from portal.management.base import PortalCommand
from tokens.clients.services import MAX_OVERLAP, client_secret_rotate
from tokens.management.cli import add_client_id_argument, application_named

MAX_OVERLAP_HOURS = int(MAX_OVERLAP.total_seconds() // 3600)


class Command(PortalCommand):
    help = (
        "Add a new client secret to an M2M application and print it once. The current secrets "
        "keep working for --overlap-hours (default: the organisation's rotation overlap; 0 stops "
        "them at once, e.g. after a leak)."
    )

    def add_arguments(self, parser):
        add_client_id_argument(parser)
        parser.add_argument(
            "--overlap-hours",
            type=int,
            default=None,
            help="Hours the current secrets keep working (0 to 168; default: the organisation's overlap).",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        application = application_named(options)
        overlap_hours = options["overlap_hours"]
        if overlap_hours is None:  # as the dashboard's and the REST API's rotations default
            overlap_hours = policy_for(application.organization).default_rotation_overlap_hours
        if not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
            raise CommandError(f"--overlap-hours must be between 0 and {MAX_OVERLAP_HOURS}.")
        with service_refusals():
            secret, plaintext = client_secret_rotate(
                application=application,
                actor=None,
                overlap=timedelta(hours=overlap_hours),
                via="cli",
            )
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "client_id": application.client_id,
                        "client_secret": plaintext,
                        "secret_id": secret.public_id,
                        "overlap_hours": overlap_hours,
                    }
                )
            )
            return
        self.stdout.write(f"New secret for {application.client_id} (hint {secret.hint}):")
        self.stdout.write(plaintext)
        self.stdout.write("The secret is shown only now; store it safely.")
