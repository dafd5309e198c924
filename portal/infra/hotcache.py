"""One cache round trip per machine request: read every key the hot path needs at once.

A machine request used to ask the shared cache (Redis) one question at a time: the per-IP
failure counter, then the credential snapshot, then the once-a-minute last-used marker —
three round trips. Now the caller names every key up front and `prefetched(keys)` reads
them with one `cache.get_many` (a single Redis `MGET`); inside that block the readers
(`get`, `present`) answer from the result instead of asking again. Code that is not inside
a block, or asks for a key that was not named, reads the cache as before, so every reader
keeps working unchanged outside the hot path.

Staleness: the values are read at the start of the block and used within the same
request, microseconds later — the same as reading them one by one. Writes (`add`, `set`,
`incr`, `delete`) still go straight to the cache.

Recent reads (`recent=True`): the API-key path may also take a key from what this process
read from the shared cache less than `PORTAL_API_KEY_MEMO_SECONDS` ago (0.25 s by default),
so a warm request makes no round trip at all; a write this process makes forgets the key at
once, and a change made by another process is seen within that many seconds (the revocation
bound, docs/operations.md). `refresh(keys)` re-reads keys that were answered that way when a
decision must rest on the current value (a failed verification and the per-IP counter).

Invalidations that must land (`invalidate`, `replace`): a revocation's write to the shared
cache is tried even while the cache backs off after a failure, and one Redis refuses is made
before this process next uses Redis (`ResilientRedisCache.delete_many_strict`).

Growing the batch: a later feature that reads more per request (usage counters, per-credential
limits) adds its keys to the list passed to `prefetched` — `hot_keys` functions beside each
reader return them — and the request still makes one read round trip (docs/performance.md).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_MISSING = object()

#: The values read by the innermost `prefetched` block: key -> value, _MISSING for an absent key.
_batch: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "portal_hotcache", default=None
)
#: The keys of the innermost block's batch that were answered from this process's recent reads.
_recalled: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "portal_hotcache_recalled", default=None
)


def memo_seconds() -> float:
    """Return how old a recent read may be to answer a `recent=True` batch (0: never)."""
    return float(getattr(settings, "PORTAL_API_KEY_MEMO_SECONDS", 0) or 0)


@contextmanager
def prefetched(keys: Iterable[str], *, recent: bool = False) -> Iterator[None]:
    """Read `keys` from the cache in one round trip; readers inside the block use the result.

    Keys an enclosing block already read are not read again. If the cache fails, nothing is
    prefetched and the readers ask the cache themselves (which fails soft, as before).

    `recent=True`: keys this process read from the shared cache less than `memo_seconds()`
    ago may be answered from that read, with no round trip (`ResilientRedisCache.
    get_many_recent`; a per-process cache has no round trip to save and reads as usual). The
    caller accepts values up to that old, and must not mutate them.
    """
    outer = _batch.get()
    wanted = [key for key in dict.fromkeys(keys) if key and (outer is None or key not in outer)]
    if not wanted and outer is not None:
        yield  # everything was read by the enclosing block: its batch answers
        return
    values: dict[str, Any] = dict(outer or {})
    recalled: set[str] = set(_recalled.get() or ())
    if wanted:
        reader = getattr(cache, "get_many_recent", None) if recent else None
        max_age = memo_seconds() if reader is not None else 0.0
        try:
            if max_age > 0:
                found, from_memo = reader(wanted, max_age)
                recalled.update(from_memo)
            else:
                found = cache.get_many(wanted)
        except Exception:  # noqa: BLE001  a cache without soft failure: fall back to one-by-one reads
            logger.warning("cache unavailable for the hot-path batch; reading keys one by one", exc_info=True)
            found = None
        if found is not None:
            for key in wanted:
                values[key] = found.get(key, _MISSING)
    token = _batch.set(values)
    recalled_token = _recalled.set(recalled)
    try:
        yield
    finally:
        _recalled.reset(recalled_token)
        _batch.reset(token)


def refresh(keys: Iterable[str]) -> None:
    """Re-read, in one round trip, those of `keys` the current batch took from recent reads.

    For a decision that must rest on the shared cache's value now (the per-IP failure counter
    when a verification failed). A no-op when none of them was answered that way.
    """
    values, recalled = _batch.get(), _recalled.get()
    if values is None or not recalled:
        return
    stale = [key for key in dict.fromkeys(keys) if key in recalled]
    if not stale:
        return
    reader = getattr(cache, "get_many_recent", None)
    try:
        # max_age 0: every key is read now, and the fresh value is what this process remembers.
        found = reader(stale, 0.0)[0] if reader is not None else cache.get_many(stale)
    except Exception:  # noqa: BLE001  as in prefetched: readers then ask the cache themselves
        logger.warning("cache unavailable for the hot-path batch; reading keys one by one", exc_info=True)
        for key in stale:
            values.pop(key, None)
    else:
        for key in stale:
            values[key] = found.get(key, _MISSING)
    recalled.difference_update(stale)


def get(key: str, default: Any = None, *, shared: bool = False) -> Any:
    """Return the cached value of `key`: from the current batch if it was read there, else the cache.

    `shared=True`: the caller will not mutate the value, so a per-process cache may hand out
    the object it unpickled before (`portal.infra.cache.PortalLocMemCache.get_shared`).
    """
    values = _batch.get()
    if values is not None and key in values:
        value = values[key]
        return default if value is _MISSING else value
    if shared:
        reader = getattr(cache, "get_shared", None)
        if reader is not None:
            return reader(key, default)
    return cache.get(key, default)


def present(key: str) -> bool | None:
    """Return whether the current batch saw `key` in the cache; None when the batch did not read it."""
    values = _batch.get()
    if values is None or key not in values:
        return None
    return values[key] is not _MISSING


def add_many(keys: Iterable[str], value: Any, timeout: int, *, backend=None) -> set[str] | None:
    """`add(key, value, timeout)` for every key; return the keys that were added.

    One round trip on Redis (`ResilientRedisCache.add_many`: `SET … NX EX` per key in a Lua script;
    None when Redis did not answer), one `add` per key on other caches. A cache error is raised,
    as `add` would raise it. `backend`: the cache to use (the default cache when None).
    """
    backend = cache if backend is None else backend
    adder = getattr(backend, "add_many", None)
    if adder is not None:
        return adder(keys, value, timeout)
    return {key for key in dict.fromkeys(keys) if backend.add(key, value, timeout)}


def incr_many(deltas: dict[str, int], timeout: int, *, backend=None) -> dict[str, int]:
    """Add each delta to its counter, creating missing ones with `timeout`; return the new values.

    A new value equal to its delta means this call created the counter. One round trip on
    Redis (`ResilientRedisCache.incr_many`), `add` or `incr` per key on other caches. A cache
    error is raised, as `add`/`incr` would raise it. `backend`: as for `add_many`.
    """
    backend = cache if backend is None else backend
    counter = getattr(backend, "incr_many", None)
    if counter is not None:
        return counter(deltas, timeout)
    totals = {}
    for key, delta in deltas.items():
        totals[key] = delta if backend.add(key, delta, timeout) else backend.incr(key, delta)
    return totals


def invalidate(keys: Iterable[str], *, backend=None) -> bool:
    """Delete `keys` for an invalidation that must land (a revocation); return whether it landed now.

    On Redis it is tried even during the back-off, and when refused it is logged and made
    before this process's next use of Redis (`ResilientRedisCache.delete_many_strict`). A
    per-process cache deletes as usual. Never raises: the change that asked for it stands.
    """
    backend = cache if backend is None else backend
    strict = getattr(backend, "delete_many_strict", None)
    try:
        if strict is not None:
            return strict(keys)
        backend.delete_many(list(keys))
    except Exception:  # noqa: BLE001  a cache without soft failure: logged, the change stands
        logger.error("could not invalidate cache keys", exc_info=True)
        return False
    return True


def replace(data: dict[str, Any], timeout: int, *, backend=None) -> bool:
    """`set_many(data, timeout)` for an invalidation that must land; as `invalidate`, the keys replaced.

    When Redis refuses it, the keys are deleted later instead (`ResilientRedisCache.set_many_strict`).
    """
    backend = cache if backend is None else backend
    strict = getattr(backend, "set_many_strict", None)
    try:
        if strict is not None:
            return strict(data, timeout)
        return not backend.set_many(data, timeout)
    except Exception:  # noqa: BLE001  as in invalidate
        logger.error("could not replace cache keys", exc_info=True)
        return False
