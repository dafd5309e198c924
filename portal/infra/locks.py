"""One PostgreSQL advisory lock per job that must run in turn (two servers, two cron runs).

The keys are arbitrary constants, one per caller, listed here so that no two callers share one.
"""

from __future__ import annotations

from django.db import connection

#: insight merges (credentials.insight.rollup), usage roll-ups (credentials.usage), seed_demo.
INSIGHT_MERGE = 0x1D5E_0057
USAGE_ROLLUP = 0x1D5E_0058
SEED_DEMO = 0x1D5E_0059


def advisory_xact_lock(key: int) -> None:
    """Take the advisory lock `key` until the transaction ends (PostgreSQL; SQLite has one writer
    anyway, so nothing is needed there)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
