"""`manage.py api_key_cutover`: show or set the cut-over of an API key moved to an M2M application."""

from __future__ import annotations

from django.core.management.base import CommandError

from credentials.api_keys.cli import add_key_id_argument, api_key_named
from credentials.api_keys.cutover import (
    QUIET_HOURS,
    api_key_cutover_complete,
    api_key_cutover_set,
    cutover_for,
)
from credentials.api_keys.models import ApiKey
from credentials.cli import json_written, service_refusals
from portal.management.base import PortalCommand


class Command(PortalCommand):
    help = (
        "Show the cut-over of an API key moved to an M2M application (its use in the last hour and day, "
        "whether it may be revoked), set its quiet period and automatic revoke, or revoke it once quiet."
    )

    def add_arguments(self, parser):
        add_key_id_argument(parser)
        parser.add_argument(
            "--quiet-hours", type=int, choices=sorted(QUIET_HOURS), help="The quiet period, in hours."
        )
        parser.add_argument(
            "--auto-revoke",
            action="store_true",
            default=None,
            help="Revoke automatically once the quiet period has passed.",
        )
        parser.add_argument("--no-auto-revoke", dest="auto_revoke", action="store_false")
        parser.add_argument(
            "--revoke", action="store_true", help="Revoke the key now, if its cut-over is complete."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        api_key = api_key_named(options)
        with service_refusals():
            if options["quiet_hours"] is not None or options["auto_revoke"] is not None:
                api_key = api_key_cutover_set(
                    api_key=api_key,
                    actor=None,
                    quiet_hours=options["quiet_hours"] or api_key.cutover_quiet_hours,
                    auto_revoke=api_key.cutover_auto_revoke
                    if options["auto_revoke"] is None
                    else options["auto_revoke"],
                    via="cli",
                )
            if options["revoke"]:
                api_key = api_key_cutover_complete(api_key=api_key, actor=None, via="cli")
        api_key = ApiKey.objects.select_related("organization").get(pk=api_key.pk)
        cutover = cutover_for(api_key)
        if cutover is None:
            raise CommandError("This key was not moved to an M2M application, so it has no cut-over.")
        result = {
            "key_id": api_key.key_id,
            "status": api_key.state,
            "moved_to": cutover.application.client_id,
            "quiet_hours": cutover.quiet_hours,
            "auto_revoke": cutover.auto_revoke,
            "used_last_hour": cutover.last_hour,
            "used_last_day": cutover.last_day,
            "last_use": cutover.last_use.isoformat() if cutover.last_use else None,
            "revocable_at": cutover.revocable_at.isoformat(),
            "ready": cutover.ready,
            "detail": cutover.blocker,
        }
        if json_written(self, options, result):
            return
        self.stdout.write(
            f"{api_key.display_prefix} ({api_key.state}), moved to {result['moved_to']}: used "
            f"{cutover.last_hour} time(s) in the last hour, {cutover.last_day} in the last day."
        )
        self.stdout.write(
            f"Quiet period {cutover.quiet_label}; automatic revoke {'on' if cutover.auto_revoke else 'off'}."
        )
        self.stdout.write(cutover.blocker or "The cut-over is complete: the key may be revoked (--revoke).")
