"""`manage.py deliver_webhooks`: send the due webhook deliveries (once, or in a loop)."""

from __future__ import annotations

import signal
import time

from django.core.management.base import BaseCommand, CommandError

from credentials.webhooks.delivery import deliveries_drain


class Command(BaseCommand):
    help = (
        "Send every due webhook delivery from the outbox, retrying failures with back-off. "
        "Run it with --once from cron every minute, or with --loop as a service. Several "
        "runners may work at the same time: each delivery is claimed by one."
    )

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--once", action="store_true", help="Send what is due now, then exit (default).")
        mode.add_argument("--loop", action="store_true", help="Keep sending until stopped (SIGTERM/SIGINT).")
        parser.add_argument("--interval", type=float, default=5.0, help="Seconds between passes with --loop.")
        parser.add_argument("--batch-size", type=int, default=20, help="Deliveries claimed at a time.")

    def handle(self, *args, **options):
        if options["batch_size"] < 1 or options["interval"] < 0:
            raise CommandError("--batch-size must be at least 1 and --interval not negative.")
        if not options["loop"]:
            self._report(deliveries_drain(batch_size=options["batch_size"]))
            return
        stopping = []

        def stop(_signum, _frame):
            stopping.append(True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not stopping:
            counts = deliveries_drain(batch_size=options["batch_size"], stop=lambda: bool(stopping))
            if any(counts.values()):
                self._report(counts)
            slept = 0.0
            while not stopping and slept < options["interval"]:
                time.sleep(0.2)
                slept += 0.2

    def _report(self, counts: dict[str, int]) -> None:
        self.stdout.write(
            f"Delivered {counts['succeeded']}; will retry {counts['failed']}; gave up on {counts['dead']}."
        )
