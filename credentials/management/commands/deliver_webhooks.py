"""`manage.py deliver_webhooks`: send the due webhook deliveries (once, or in a loop)."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from datetime import timedelta

from django.core.management.base import CommandError

from credentials.webhooks.delivery import deliveries_drain, worker_heartbeat_record
from credentials.webhooks.services import webhook_deliveries_purge
from portal.management.base import PortalCommand

#: Bounds of the options: a batch is claimed (leased) at once, and a pass should come round.
MAX_BATCH_SIZE = 1000
MAX_INTERVAL = 3600


#: Seconds between two heartbeats of a runner: often enough for the dashboard's 5-minute warning.
HEARTBEAT_SECONDS = 30


def _heartbeat() -> Callable[[], None]:
    """Return a heartbeat for the drain: it records one now, then at most every HEARTBEAT_SECONDS.

    The drain calls it before each claim and each request, so a pass that takes long (a backlog,
    slow receivers) keeps the runner shown as alive; an idle loop records one every 30 s.
    """
    last: list[float] = []

    def beat() -> None:
        now = time.monotonic()
        if not last or now - last[0] >= HEARTBEAT_SECONDS:
            worker_heartbeat_record()
            last[:] = [now]

    return beat


class Command(PortalCommand):
    help = (
        "Send every due webhook delivery from the outbox, retrying failures with back-off. "
        "Run it with --once from cron every minute, or with --loop as a service. Several "
        "runners may work at the same time: each delivery is claimed by one. "
        "--purge-older-than DAYS deletes old delivered and given-up deliveries instead (daily from cron)."
    )

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--once", action="store_true", help="Send what is due now, then exit (default).")
        mode.add_argument("--loop", action="store_true", help="Keep sending until stopped (SIGTERM/SIGINT).")
        mode.add_argument(
            "--purge-older-than",
            type=int,
            metavar="DAYS",
            help="Delete delivered and given-up deliveries created more than DAYS days ago, then exit "
            "(nothing is sent). Pending and failed ones are kept.",
        )
        parser.add_argument("--interval", type=float, default=5.0, help="Seconds between passes with --loop.")
        parser.add_argument("--batch-size", type=int, default=20, help="Deliveries claimed at a time.")

    def handle(self, *args, **options):
        if not 1 <= options["batch_size"] <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be from 1 to {MAX_BATCH_SIZE}.")
        if not math.isfinite(options["interval"]) or not 0 <= options["interval"] <= MAX_INTERVAL:
            raise CommandError(f"--interval must be a number of seconds from 0 to {MAX_INTERVAL}.")
        days = options["purge_older_than"]
        if days is not None:
            if not 1 <= days <= 36500:
                raise CommandError("--purge-older-than must be a number of days from 1 to 36500.")
            deleted = webhook_deliveries_purge(older_than=timedelta(days=days))
            self.stdout.write(f"Deleted {deleted} webhook deliveries older than {days} days.")
            return
        heartbeat = _heartbeat()
        if not options["loop"]:
            self._report(deliveries_drain(batch_size=options["batch_size"], heartbeat=heartbeat))
            return
        stopping = []

        def stop(_signum, _frame):
            stopping.append(True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not stopping:
            counts = deliveries_drain(
                batch_size=options["batch_size"], stop=lambda: bool(stopping), heartbeat=heartbeat
            )
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
