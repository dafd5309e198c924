"""Usage as CSV for a spreadsheet: one row per credential and period, one column per outcome.

Shared by the usage API (`?format=csv` or `Accept: text/csv`) and the "Download CSV" link of a
credential's page. The columns: `credential`, `kind`, `name`, `start` (the period's start, ISO
8601 in UTC), the outcomes in the order of `credentials.usage.OUTCOMES`, and `total`. Wide rather
than one row per outcome: a spreadsheet sums, charts and filters a column directly, and a row is
the same period as a bar of the page's chart. A period with no use has no row (as in the JSON).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

from credentials.usage import OUTCOMES
from portal.infra.spreadsheet import csv_lines

COLUMNS = ("credential", "kind", "name", "start", *OUTCOMES, "total")


def usage_csv_rows(series: list[dict]) -> Iterator[list]:
    """Yield a row per credential and bucket of a usage series (`insight.selectors.usage_series`)."""
    for entry in series:
        for bucket in entry["buckets"]:
            counts = [bucket[outcome] for outcome in OUTCOMES]
            yield [entry["credential"], entry["kind"], entry["name"], bucket["start"], *counts, sum(counts)]


def usage_csv(series: list[dict]) -> str:
    """Return a usage series as CSV text: the header, then a row per credential and bucket."""
    return "".join(csv_lines(COLUMNS, usage_csv_rows(series)))


def usage_csv_filename(org_slug: str, *parts: str | datetime) -> str:
    """Return a download's file name, `<org>-usage-<part>-….csv` (date-times as UTC, safe characters)."""
    names = [
        f"{part.astimezone(UTC):%Y%m%dT%H%MZ}" if isinstance(part, datetime) else str(part)
        for part in (org_slug, "usage", *parts)
    ]
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", name) for name in names) + ".csv"
