"""Roll the cache's usage insight (credentials.insight.recorder) up into its three small tables.

Called by `credentials.usage.rollup()` (the `rollup_usage` command). Each cache entry is
claimed once with `cache.add` before it is merged (then deleted), so running the roll-up
twice, or on two servers at once, never counts twice. A roll-up costs two `get_many`, one
`add` per new entry and one `delete_many`. IP and scope rows add the entry's counts to theirs
(under a row lock) and keep the latest time; denials are appended. Then each touched
credential keeps its `MAX_RECENT` most recent IPs and denials.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import transaction

from credentials.insight.models import UsageClientIp, UsageDenial, UsageScope
from credentials.insight.recorder import CACHE_SECONDS, MAX_RECENT, PREFIX
from portal.infra import locks
from portal.models import Organization

logger = logging.getLogger(__name__)


def _claimed_entries(first_minute: int, last_minute: int) -> list[dict]:
    """Return the unclaimed notes stored for these minutes, claiming each one."""
    minutes = range(first_minute, last_minute + 1)
    try:
        listed = cache.get_many([f"{PREFIX}n:{m}" for m in minutes])
        keys = [
            f"{PREFIX}{m}:{slot}"
            for m in minutes
            for slot in range(1, int(listed.get(f"{PREFIX}n:{m}", 0)) + 1)
        ]
        if not keys:
            return []
        found = cache.get_many(keys)
        # A slot listed but not yet written (its flush is under way) is left for the next roll-up.
        claimed = {
            key: notes for key, notes in found.items() if cache.add(f"{key}:claimed", 1, CACHE_SECONDS)
        }
        # Gone once claimed, so later roll-ups read and claim only new entries (the claim mark
        # stays: a roll-up that read an entry before this one deleted it cannot claim it).
        cache.delete_many(list(claimed))
        return list(claimed.values())
    except Exception:  # noqa: BLE001  metering fails open
        logger.warning("Usage insight could not be read from the cache", exc_info=True)
        return []


def _merge(entries: list[dict]) -> tuple[dict, dict, dict]:
    ips: dict = {}
    scopes: dict = {}
    denials: dict = {}
    for notes in entries:
        for name, note in notes.items():
            kind, credential_id, organization_id = name.split("|")
            series = (kind, credential_id, int(organization_id))
            for target, values in ((ips, note["ips"]), (scopes, note["scopes"])):
                merged = target.setdefault(series, {})
                for value, (n, last) in values.items():
                    old = merged.get(value, (0, 0.0))
                    merged[value] = (old[0] + n, max(old[1], last))
            denials.setdefault(series, []).extend(note["denials"])
    return ips, scopes, denials


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _serialise_merges() -> None:
    """Take the merge lock until the transaction ends.

    `_add_counts` reads a row, adds to its count and writes it: `SELECT … FOR UPDATE` locks a
    row that exists, but not one two roll-ups are both about to create, and the second upsert
    then overwrote the first's count instead of adding to it.
    """
    locks.advisory_xact_lock(locks.INSIGHT_MERGE)


def _add_counts(model, field: str, time_field: str, merged: dict) -> None:
    """Add `merged` ({series: {value: (count, last)}}) to the rows of `model`, creating missing ones."""
    if not merged:
        return
    existing = {
        (row.kind, row.credential_id, getattr(row, field)): row
        for row in model.objects.select_for_update().filter(
            kind__in={kind for kind, _c, _o in merged}, credential_id__in={c for _k, c, _o in merged}
        )
    }
    rows = []
    for (kind, credential_id, organization_id), values in merged.items():
        for value, (n, last) in values.items():
            old = existing.get((kind, credential_id, value))
            when = _when(last)
            rows.append(
                model(
                    organization_id=organization_id,
                    kind=kind,
                    credential_id=credential_id,
                    count=n + (old.count if old else 0),
                    **{field: value, time_field: max(when, getattr(old, time_field)) if old else when},
                )
            )
    model.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["kind", "credential_id", field],
        update_fields=["count", time_field],
        batch_size=500,
    )


def _trim(model, order: str, touched: set) -> None:
    """Keep each touched credential's `MAX_RECENT` most recent rows of `model`."""
    for kind, credential_id in touched:
        rows = model.objects.filter(kind=kind, credential_id=credential_id)
        keep = rows.order_by(f"-{order}", "-pk").values_list("pk", flat=True)[:MAX_RECENT]
        rows.exclude(pk__in=list(keep)).delete()


def rollup(*, first_minute: int, last_minute: int) -> int:
    """Merge the cache's unclaimed notes of these minutes into the tables; return how many were merged."""
    entries = _claimed_entries(first_minute, last_minute)
    if not entries:
        return 0
    ips, scopes, denials = _merge(entries)
    ids = {org for merged in (ips, scopes, denials) for _k, _c, org in merged}
    known = set(Organization.objects.filter(pk__in=ids).values_list("pk", flat=True))
    # Notes of an organisation deleted since (or never committed) are dropped, not written.
    ips, scopes, denials = ({s: v for s, v in m.items() if s[2] in known} for m in (ips, scopes, denials))
    with transaction.atomic():
        _serialise_merges()
        _add_counts(UsageClientIp, "ip", "last_seen", ips)
        _add_counts(UsageScope, "scope", "last_used", scopes)
        UsageDenial.objects.bulk_create(
            [
                UsageDenial(
                    organization_id=org,
                    kind=kind,
                    credential_id=credential_id,
                    at=_when(at),
                    outcome=outcome,
                    ip=ip,
                    endpoint=(endpoint or "")[:200],
                )
                for (kind, credential_id, org), rows in denials.items()
                for at, outcome, ip, endpoint in sorted(rows, key=lambda row: row[0])[-MAX_RECENT:]
            ]
        )
        _trim(UsageClientIp, "last_seen", {(k, c) for k, c, _o in ips})
        _trim(UsageDenial, "at", {(k, c) for k, c, _o in denials})
    return len(entries)
