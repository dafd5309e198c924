"""Fixed-window rate limits kept in the cache, so app servers sharing Redis share the counts.

Used for failed client authentication, failed key verifications and token issuance. A
cache outage fails open (the request is served): availability of the identity layer
matters more than the counter, and the real checks (digests, signatures) still run.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from portal.infra import hotcache
from portal.infra.cache import cache_is_down


@dataclass(frozen=True)
class Limit:
    """At most `limit` events per `window` seconds."""

    limit: int
    window: int


def _key(scope: str, ident: str, window: int, now: float) -> str:
    digest = hashlib.sha256(ident.encode()).hexdigest()[:24]
    return f"rl:{scope}:{digest}:{int(now // window)}"


def retry_after(scope: str, ident: str, limit: Limit) -> int | None:
    """Return seconds to wait if `ident` has used up `limit` in this window, else None."""
    if limit.limit <= 0:
        return None
    now = time.time()
    try:
        count = hotcache.get(_key(scope, ident, limit.window, now), 0)
    except Exception:  # noqa: BLE001
        return None
    if count >= limit.limit:
        return max(1, math.ceil(limit.window - (now % limit.window)))
    return None


def hit(scope: str, ident: str, limit: Limit) -> int:
    """Count one event for `ident`; return the count in the current window (0 if the cache failed)."""
    return count(scope, ident, limit) or 0


def count(scope: str, ident: str, limit: Limit) -> int | None:
    """Count one event for `ident`; return the count in the current window, or None if the cache failed."""
    now = time.time()
    key = _key(scope, ident, limit.window, now)
    try:
        counted = _count_in_cache(key, limit)
    except Exception:  # noqa: BLE001  missing key after expiry, or cache down
        return None
    # The resilient Redis cache answers a failed call with a stand-in (`incr`: the delta) and
    # backs off; a count it never made is no count (a fail-closed limit must see the outage).
    if cache_is_down():
        return None
    return counted


def _count_in_cache(key: str, limit: Limit) -> int:
    if hotcache.present(key):
        # The request's batch saw the counter: one INCR instead of ADD then INCR.
        try:
            return cache.incr(key)
        except ValueError:
            pass  # expired since the batch read it: start it again
    if cache.add(key, 1, limit.window + 1):
        return 1
    return cache.incr(key)


#: One counted identity: (scope, identifier, limit). An empty identifier is not counted.
Check = tuple[str, str | None, Limit]


def per_minute(setting: str) -> Limit:
    """Return the limit named by a `…_PER_MINUTE` setting (0 switches it off)."""
    return Limit(int(getattr(settings, setting)), 60)


def hot_keys(checks: list[Check]) -> list[str]:
    """Return the cache keys `blocked(checks)` reads now, for one batched read (`portal.infra.hotcache`)."""
    now = time.time()
    return [
        _key(scope, ident, limit.window, now) for scope, ident, limit in checks if ident and limit.limit > 0
    ]


def blocked(checks: list[Check]) -> int | None:
    """Return the longest wait among the exhausted checks, or None if all have room.

    The counters are read in one round trip (or taken from the request's batch, if read there).
    """
    with hotcache.prefetched(hot_keys(checks)):
        waits = [retry_after(scope, ident, limit) for scope, ident, limit in checks if ident]
    return max((wait for wait in waits if wait is not None), default=None)


def hit_all(checks: list[Check]) -> None:
    """Count one event against every identity in `checks`."""
    for scope, ident, limit in checks:
        if ident and limit.limit > 0:
            hit(scope, ident, limit)
