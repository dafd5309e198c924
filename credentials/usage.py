"""Usage metering, both kinds: count each use per credential per minute by outcome, with no database write.

`record()` adds one to an in-process counter (a dict under a lock: no I/O on the request).
`flush()` moves the process's counters into the cache (Redis in production, so every app
server adds to the same numbers; per process without it), at most once every
`PORTAL_USAGE_FLUSH_SECONDS` at the end of a request. `rollup()` (the `rollup_usage` command,
and under DEBUG opportunistically in-process at most every `PORTAL_USAGE_ROLLUP_SECONDS`)
copies the cache's per-minute counts into `UsageBucket` rows (minute, hour and day) and
applies the retention. Counts in the cache are totals per minute, so a roll-up writes
absolute values: running it twice, or from two processes, never counts twice.

Metering fails open: verification never waits for the cache. A flush that would send nothing
to Redis (the cache backs off after a failure, `ResilientRedisCache.is_down()`, or Redis refuses
the connection) keeps what the process holds for the next flush instead, within bounds (`_hold`);
only counts that were sent and got no answer are dropped (Redis may have added them). A Redis
that loses its data loses the counts not yet rolled up (docs/usage.md). A process that exits (a
graceful stop or restart, a worker recycled) flushes what it still holds; one that is killed
loses at most its last `PORTAL_USAGE_FLUSH_SECONDS` of counts. A process that goes idle flushes
from a timer, 2 × `PORTAL_USAGE_FLUSH_SECONDS` after the first count it holds (as
`credentials.last_used` does), so its counts never wait for its next request.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice

from django.conf import settings
from django.core.cache import cache
from django.core.signals import request_finished
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import TruncDay, TruncHour

from credentials.insight import recorder as insight
from credentials.insight import rollup as insight_rollup
from credentials.models import UsageBucket
from portal.infra import hotcache, locks
from portal.infra.cache import cache_is_down, cache_refuses_connections
from portal.infra.idle import IdleFlush
from portal.models import Organization

logger = logging.getLogger(__name__)

OUTCOMES = (
    "valid",
    "invalid_secret",
    "expired",
    "revoked",
    "suspended",
    "insufficient_scope",
    "ip_denied",
    "rate_limited",
)
#: How an outcome is named in tables (the others: "insufficient_scope" → "Insufficient scope").
OUTCOME_LABELS = {"ip_denied": "IP denied"}
KINDS = ("api_key", "m2m_app")
#: How long each granularity is kept.
RETENTION = {"minute": timedelta(hours=48), "hour": timedelta(days=90), "day": timedelta(days=400)}
#: How long a minute's counts stay in the cache, waiting for a roll-up.
CACHE_SECONDS = 6 * 3600
_PREFIX = "usage:v1:"

_lock = threading.Lock()
_counts: Counter = Counter()
_last_flush = [0.0]
_last_rollup = [0.0]
#: How far back a roll-up reads the cache's minutes.
ROLLUP_LOOKBACK_MINUTES = 120
#: Series this process created in the cache but could not list under their minute (a cache error
#: between the two round trips), or may have created (the counts got no answer): `{cache key:
#: (minute, series)}`, listed by its next flush.
#: No other flush would list them: they see a total above their own count and take them as listed.
_unlisted: dict[str, tuple[int, str]] = {}
#: Series (a credential's outcome in one minute) a process keeps, at most, for its next flush while
#: the cache backs off, and unlisted series it keeps: past it the oldest minutes are dropped, so a
#: long outage cannot grow memory (with the roll-up's look-back, which drops older minutes anyway).
MAX_HELD_SERIES = 50_000


def _minute(now: float | None = None) -> int:
    return int((now if now is not None else time.time()) // 60)


def record(
    kind: str, credential_id: str, organization_id: int | None, outcome: str, *, scopes=(), ip=None
) -> None:
    """Count one use of a credential (its public id) with `outcome`; costs a few dict updates.

    `scopes`: the scopes the request needed (credentials.insight keeps when each was last used).
    `ip`: the client's address when it is not the request's (a verifying service reports it;
    "" for unknown); None takes the request's.
    """
    if not credential_id or organization_id is None or not settings.PORTAL_USAGE_METERING:
        return
    with _lock:
        _counts[(_minute(), kind, credential_id, organization_id, outcome)] += 1
        insight.note((kind, credential_id, organization_id), outcome, scopes, ip)
        _idle.arm()


def record_api_key(verification, outcome: str | None = None, *, scopes=(), ip=None) -> None:
    """Count one verification of an API key (`api_keys.verification.Verification`) by its outcome."""
    key = verification.key or verification.wrong_secret_of
    if key is None:
        return  # malformed or unknown: no credential to count against
    if outcome is None:
        if verification.valid:
            outcome = "valid"
        elif verification.wrong_secret_of is not None:
            outcome = "invalid_secret"
        elif verification.code == "revoked" and key.get("status") == "suspended":
            outcome = "suspended"
        else:
            outcome = verification.code
    record("api_key", key["key_id"], key["organization_id"], outcome, scopes=scopes, ip=ip)


# --- the cache ------------------------------------------------------------------------------


def _series_key(minute: int, series: str) -> str:
    return f"{_PREFIX}c:{minute}:{series}"


def flush() -> None:
    """Add this process's counters to the cache (per minute, per series), then its insight notes.

    Three cache round trips for the counters whatever the number of series (`hotcache.incr_many`, a
    pipeline on Redis): add every count; list the series this flush created under their minute's
    slot counter; store the new slots' names. Before, each new series cost five round trips and
    each known one two, which made a flush after a minute of many credentials the largest cost of
    their requests (docs/performance.md, "Third pass"). The insight notes follow (`insight.push`).

    What nothing would carry to Redis is kept for the next flush (`_hold`): everything, while the
    cache backs off after a failure (anything sent then is answered by a stand-in, never by Redis)
    or while Redis refuses the connection; the notes, when the counters' failure started the
    back-off. The counters go first: a failed notes write cannot start a back-off under them.
    """
    with _lock:
        if cache_is_down():
            _hold()
            return
        counts = dict(_counts)
        _counts.clear()
        _last_flush[0] = time.monotonic()
        _idle.flushed()
        unlisted = dict(_unlisted)
        _unlisted.clear()
    if not counts and not unlisted and not insight.holding():
        return
    # Asked again now, outside the lock (another thread's failure may have started a back-off), and
    # whether Redis takes a connection: either way nothing would be sent, so nothing may be dropped.
    if cache_is_down() or cache_refuses_connections():
        with _lock:
            _give_back(counts, unlisted)
        return
    if counts or unlisted:
        _send(counts, unlisted)
    with _lock:
        if cache_is_down():  # the counters just failed: the notes, never sent, wait with their series
            insight.hold()
            _idle.arm()
            return
        notes = insight.take()
    insight.push(notes, _minute())


def _send(counts: dict, unlisted: dict[str, tuple[int, str]]) -> None:
    """Add `counts` to the cache's counters and list the series they create (and `unlisted`)."""
    series_of = {}
    for (minute, kind, credential_id, organization_id, outcome), n in counts.items():
        series = f"{kind}|{credential_id}|{organization_id}|{outcome}"
        series_of[_series_key(minute, series)] = (minute, series, n)
    # What a failed listing left, first: kept for the next flush if this one fails too.
    to_list: dict[str, tuple[int, str]] = _still_listable(unlisted)
    # Until the cache answers the counts, any series of this flush may have been created (Redis ran
    # the script but its reply was lost): if this flush fails, every one is listed by the next.
    # Listing a series twice, or one whose counter does not exist, is harmless: `minute_counts`
    # reads each listed series once and skips a missing counter.
    unanswered = {key: (minute, series) for key, (minute, series, _n) in series_of.items()}
    try:
        totals = (
            hotcache.incr_many(
                {key: n for key, (_m, _s, n) in series_of.items()}, CACHE_SECONDS, backend=cache
            )
            if series_of
            else {}
        )
        if len(totals) < len(series_of):  # a fail-soft cache answers `{}`: nothing is known
            raise OSError("the counts were not answered")
        unanswered = {}
        # A series this flush created (its total is this flush's count): list it under its
        # minute, so the roll-up can find it without a scan.
        to_list.update(
            {key: (minute, series) for key, (minute, series, n) in series_of.items() if totals[key] == n}
        )
        if not to_list:
            return
        created: dict[int, list[str]] = {}
        for minute, series in to_list.values():
            created.setdefault(minute, []).append(series)
        last_slots = hotcache.incr_many(
            {f"{_PREFIX}n:{minute}": len(names) for minute, names in created.items()},
            CACHE_SECONDS,
            backend=cache,
        )
        if len(last_slots) < len(created):
            raise OSError("the series' slots were not answered")
        slots = {}
        for minute, names in created.items():
            first = last_slots[f"{_PREFIX}n:{minute}"] - len(names) + 1
            slots.update({f"{_PREFIX}s:{minute}:{first + i}": name for i, name in enumerate(names)})
        if cache.set_many(slots, CACHE_SECONDS):  # a fail-soft cache answers the keys it did not store
            raise OSError("the series' names were not stored")
    except Exception:  # noqa: BLE001  metering fails open
        logger.warning("Usage counts could not be stored or listed", exc_info=True)
        with _lock:
            # Listed by the next flush (a listing twice counts once); the counts themselves are
            # not sent again: they reached Redis, which may have added them already.
            _unlisted.update(to_list)
            _unlisted.update(unanswered)
            _bound_unlisted()
            _idle.arm()  # even if no request comes to flush


def _give_back(counts: dict, unlisted: dict[str, tuple[int, str]]) -> None:
    """Hold again what a flush took but never sent, before what was counted since (the caller holds the
    lock): `_hold` drops the oldest first."""
    since = list(_counts.items())
    _counts.clear()
    _counts.update(counts)
    for key, n in since:
        _counts[key] += n
    _unlisted.update(unlisted)
    _bound_unlisted()
    _hold()


def _bound_unlisted() -> None:
    """Keep the newest `MAX_HELD_SERIES` unlisted series (the caller holds the lock)."""
    if len(_unlisted) > MAX_HELD_SERIES:
        newest = sorted(_unlisted.items(), key=lambda item: item[1][0])[-MAX_HELD_SERIES:]
        _unlisted.clear()
        _unlisted.update(newest)


def _still_listable(unlisted: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """Keep the unlisted series young enough for a roll-up to read (its look-back)."""
    oldest = _minute() - ROLLUP_LOOKBACK_MINUTES
    return {key: value for key, value in unlisted.items() if value[0] >= oldest}


def _hold() -> None:
    """Keep the counts and insight notes for the next flush (the caller holds the lock), within bounds.

    Counts older than the roll-up's look-back are dropped (no roll-up would read them), then the
    oldest past `MAX_HELD_SERIES`; the insight notes are bounded per credential and by
    `recorder.MAX_HELD_SERIES`. Counts are held in the order they came, so by minute (a clock
    stepped back only delays dropping a stale one): each step costs what it drops, not a scan.
    The idle timer flushes them if no request comes; a request's flush is due an interval later.
    """
    oldest = _minute() - ROLLUP_LOOKBACK_MINUTES
    stale = []
    for key in _counts:
        if key[0] >= oldest:
            break
        stale.append(key)
    excess = len(_counts) - len(stale) - MAX_HELD_SERIES
    if excess > 0:
        stale += list(islice(_counts, len(stale), len(stale) + excess))
    for key in stale:
        del _counts[key]
    insight.hold()
    _last_flush[0] = time.monotonic()
    _idle.arm()


#: Jobs that follow each in-process roll-up under DEBUG, in order (`debug_job_register`).
_debug_jobs: list[Callable[[], object]] = []


def debug_job_register(job: Callable[[], object]) -> None:
    """Run `job` after each in-process roll-up under DEBUG (a periodic job production runs from cron)."""
    if job not in _debug_jobs:
        _debug_jobs.append(job)


def _holding() -> bool:
    """Return whether this process holds anything for the cache: counts, unlisted series or notes."""
    return bool(_counts or _unlisted) or insight.holding()


def _flush_if_due(**_kwargs) -> None:
    if _holding() and time.monotonic() - _last_flush[0] >= settings.PORTAL_USAGE_FLUSH_SECONDS:
        flush()
    # Under DEBUG (`make run`), any request (a page view, say) also rolls up now and then.
    if settings.DEBUG and time.monotonic() - _last_rollup[0] >= settings.PORTAL_USAGE_ROLLUP_SECONDS:
        _last_rollup[0] = time.monotonic()
        for job in (rollup, *_debug_jobs):
            try:
                job()
            except Exception:  # noqa: BLE001  a development convenience: never fail a request
                logger.warning("In-process %s failed", job.__name__, exc_info=True)


def rollup_before_reading() -> None:
    """Under DEBUG (`make run`, with no `rollup_usage` beside runserver), flush and roll up before a
    page or the usage API reads the rolled-up counts, when due: the roll-up after each request
    (`_flush_if_due`) comes too late for the request that asks, so after a quiet minute it showed
    nothing of the last uses. Production reads only (the `rollup_usage` cron writes)."""
    if settings.DEBUG:
        _flush_if_due()


#: A process that goes idle flushes its counts from a timer (portal.infra.idle).
_idle = IdleFlush(
    "usage-flush",
    lock=_lock,
    interval=lambda: float(settings.PORTAL_USAGE_FLUSH_SECONDS),
    holding=_holding,
    flush=flush,
)

request_finished.connect(_flush_if_due, dispatch_uid="credentials.usage.flush")


def _flush_at_exit() -> None:
    if _holding():  # as the idle timer: a series left unlisted waits for this process only
        flush()


# A server stopping gracefully (gunicorn's workers exit through SystemExit) keeps its last counts.
atexit.register(_flush_at_exit)


def minute_counts(minute: int) -> dict[tuple[str, str, int, str], int]:
    """Return `{(kind, credential id, organisation id, outcome): count}` of one minute, from the cache."""
    try:
        listed = cache.get(f"{_PREFIX}n:{minute}") or 0
        if not listed:
            return {}
        names = cache.get_many([f"{_PREFIX}s:{minute}:{slot}" for slot in range(1, listed + 1)])
        series = list(names.values())
        values = cache.get_many([_series_key(minute, s) for s in series])
    except Exception:  # noqa: BLE001
        logger.warning("Usage counts could not be read from the cache", exc_info=True)
        return {}
    counts = {}
    for name in series:
        value = values.get(_series_key(minute, name))
        if value is None:
            # Listed, but its counter is gone (evicted, or the read failed): unknown, not zero.
            continue
        kind, credential_id, organization_id, outcome = name.split("|")
        counts[(kind, credential_id, int(organization_id), outcome)] = int(value)
    return counts


# --- the roll-up ----------------------------------------------------------------------------


def rollup(*, now: datetime | None = None, lookback_minutes: int = ROLLUP_LOOKBACK_MINUTES) -> int:
    """Copy the cache's recent minutes into buckets, recompute their hours and days, apply retention.

    Return the number of minute buckets written. Idempotent: the values are totals.
    """
    flush()
    now = now or datetime.now(UTC)
    last = _minute(now.timestamp())
    rows = []
    for minute in range(last - lookback_minutes, last + 1):
        start = datetime.fromtimestamp(minute * 60, tz=UTC)
        for (kind, credential_id, organization_id, outcome), n in minute_counts(minute).items():
            rows.append(
                UsageBucket(
                    organization_id=organization_id,
                    kind=kind,
                    credential_id=credential_id,
                    granularity="minute",
                    start=start,
                    outcome=outcome,
                    count=n,
                )
            )
    if rows:
        # Counts of an organisation deleted since (or never committed) are dropped, not written.
        ids = {row.organization_id for row in rows}
        known = set(Organization.objects.filter(pk__in=ids).values_list("pk", flat=True))
        rows = [row for row in rows if row.organization_id in known]
    with transaction.atomic():
        if rows:
            # Read what is stored and write over it under one lock: a roll-up that read the cache
            # earlier must not write its lower count after a later one wrote its own.
            _serialise_rollups()
            _never_lower(rows)
            UsageBucket.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["kind", "credential_id", "granularity", "start", "outcome"],
                update_fields=["count"],
                batch_size=500,
            )
            _recompute(UsageBucket, rows, "hour", TruncHour, timedelta(hours=1))
            _recompute(UsageBucket, rows, "day", TruncDay, timedelta(days=1))
        for granularity, keep in RETENTION.items():
            UsageBucket.objects.filter(granularity=granularity, start__lt=now - keep).delete()
    insight_rollup.rollup(first_minute=last - lookback_minutes, last_minute=last)
    return len(rows)


def _serialise_rollups() -> None:
    """Take the roll-up lock until the transaction ends: two `rollup_usage` runs (two servers) in turn."""
    locks.advisory_xact_lock(locks.USAGE_ROLLUP)


def _never_lower(rows: list) -> None:
    """Keep each minute's stored count where the cache now holds less (a counter evicted, or lost
    with a Redis that restarted, and counted again from zero): a count customers have seen never
    goes down. Not their sum: nothing tells a counter counted again from one that simply grew, so
    the uses counted again show only once they pass the stored count (docs/usage.md)."""
    if not rows:
        return
    starts = [row.start for row in rows]
    stored = {
        (kind, credential_id, start, outcome): count
        for kind, credential_id, start, outcome, count in UsageBucket.objects.filter(
            granularity="minute", start__gte=min(starts), start__lte=max(starts)
        ).values_list("kind", "credential_id", "start", "outcome", "count")
    }
    for row in rows:
        row.count = max(row.count, stored.get((row.kind, row.credential_id, row.start, row.outcome), 0))


def _recompute(model, rows, granularity: str, trunc, width: timedelta) -> None:
    """Set the hour (or day) buckets touched by `rows` to the sum of their minute buckets."""
    floor = {"hour": lambda d: d.replace(minute=0, second=0, microsecond=0)}.get(
        granularity, lambda d: d.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    starts = {floor(row.start) for row in rows}
    credentials = {(row.kind, row.credential_id) for row in rows}
    lo, hi = min(starts), max(starts) + width
    sums = (
        model.objects.filter(
            granularity="minute",
            start__gte=lo,
            start__lt=hi,
            credential_id__in={c for _k, c in credentials},
        )
        .annotate(period=trunc("start", tzinfo=UTC))
        .values("organization_id", "kind", "credential_id", "period", "outcome")
        .annotate(total=Sum("count"))
    )
    model.objects.bulk_create(
        [
            model(
                organization_id=s["organization_id"],
                kind=s["kind"],
                credential_id=s["credential_id"],
                granularity=granularity,
                start=s["period"],
                outcome=s["outcome"],
                count=s["total"],
            )
            for s in sums
            if (s["kind"], s["credential_id"]) in credentials
        ],
        update_conflicts=True,
        unique_fields=["kind", "credential_id", "granularity", "start", "outcome"],
        update_fields=["count"],
        batch_size=500,
    )


# --- reading --------------------------------------------------------------------------------


def chart_window(
    *, hours: int, granularity: str, now: datetime | None = None
) -> tuple[datetime, timedelta, int]:
    """Return the start of the first period, the period and the number of periods of the last `hours`.

    The last period is the current one (this minute, hour or UTC day): what a chart of the last
    `hours` shows, and what its CSV download holds.
    """
    step = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}[granularity]
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    periods = max(1, int(timedelta(hours=hours) / step))
    floor = {"minute": now, "hour": now.replace(minute=0), "day": now.replace(hour=0, minute=0)}[granularity]
    return floor - step * (periods - 1), step, periods


def usage_summary(
    *, organization_id: int, kind: str, credential_id: str, hours: int = 24, granularity: str = "hour"
) -> dict:
    """Return one credential's usage over the last `hours` per minute, hour or day: rows, totals; one query.

    Rows are newest first; the chart has a bar per period, oldest first.
    """
    granularity = granularity if granularity in RETENTION else "hour"
    since, step, periods = chart_window(hours=hours, granularity=granularity)
    rows: dict[datetime, dict[str, int]] = {}
    totals = dict.fromkeys(OUTCOMES, 0)
    for start, outcome, n in (
        UsageBucket.objects.filter(
            organization_id=organization_id,
            kind=kind,
            credential_id=credential_id,
            granularity=granularity,
            start__gte=since,
        )
        .order_by("-start")
        .values_list("start", "outcome", "count")
    ):
        if outcome in totals:
            rows.setdefault(start, dict.fromkeys(OUTCOMES, 0))[outcome] += n
            totals[outcome] += n
    # A bar per period, oldest first: valid uses, and every refusal stacked above them (SVG, no script).
    per_period = [rows.get(since + step * i, dict.fromkeys(OUTCOMES, 0)) for i in range(periods)]
    peak = max((sum(c.values()) for c in per_period), default=0) or 1
    label = {"minute": "%H:%M", "hour": "%H:00" if hours <= 24 else "%a %d %b %H:00", "day": "%a %d %b %Y"}[
        granularity
    ]
    bars = []
    for i, c in enumerate(per_period):
        valid, refused = c["valid"], sum(c.values()) - c["valid"]
        h_valid, h_refused = round(100 * valid / peak), round(100 * refused / peak)
        bars.append(
            {
                "x": i * 10,
                "valid_y": 100 - h_valid,
                "valid_h": h_valid,
                "refused_y": 100 - h_valid - h_refused,
                "refused_h": h_refused,
                "label": f"{(since + step * i):{label}}: {valid} valid, {refused} refused",
            }
        )
    return {
        "hours": hours,
        "span": f"{hours // 24} days"
        if hours > 24 and not hours % 24
        else f"{hours} hour{'s' * (hours != 1)}",
        "granularity": granularity,
        "chart": {"bars": bars, "width": periods * 10, "peak": peak if any(rows) else 0},
        "outcomes": [OUTCOME_LABELS.get(o, o.replace("_", " ").capitalize()) for o in OUTCOMES],
        "rows": [{"start": start, "counts": [c[o] for o in OUTCOMES]} for start, c in rows.items()],
        "totals": [totals[o] for o in OUTCOMES],
    }
