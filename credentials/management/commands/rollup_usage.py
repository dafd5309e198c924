"""`rollup_usage`: copy the cache's per-minute usage counts into buckets and apply the retention."""

from __future__ import annotations

from django.core.management.base import CommandError

from credentials.usage import CACHE_SECONDS, rollup
from portal.management.base import PortalCommand

#: The per-minute counts live in the cache for `usage.CACHE_SECONDS` (6 hours): older ones are gone.
MAX_LOOKBACK_MINUTES = CACHE_SECONDS // 60


class Command(PortalCommand):
    help = (
        "Roll the cached per-minute usage counts up into minute, hour and day buckets (idempotent); "
        "run it every minute in production (cron, systemd timer or a worker loop)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--lookback-minutes",
            type=int,
            default=120,
            help=f"How many past minutes to read (1 to {MAX_LOOKBACK_MINUTES}).",
        )

    def handle(self, *args, **options):
        minutes = options["lookback_minutes"]
        if not 1 <= minutes <= MAX_LOOKBACK_MINUTES:
            raise CommandError(f"--lookback-minutes must be from 1 to {MAX_LOOKBACK_MINUTES}.")
        written = rollup(lookback_minutes=minutes)
        self.stdout.write(f"Rolled up {written} minute buckets.")
