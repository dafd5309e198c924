"""`rollup_usage`: copy the cache's per-minute usage counts into buckets and apply the retention."""

from __future__ import annotations

from credentials.usage import rollup
from portal.management.base import PortalCommand


class Command(PortalCommand):
    help = (
        "Roll the cached per-minute usage counts up into minute, hour and day buckets (idempotent); "
        "run it every minute in production (cron, systemd timer or a worker loop)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--lookback-minutes", type=int, default=120, help="How many past minutes to read (at most 360)."
        )

    def handle(self, *args, **options):
        minutes = max(1, min(options["lookback_minutes"], 360))
        written = rollup(lookback_minutes=minutes)
        self.stdout.write(f"Rolled up {written} minute buckets.")
