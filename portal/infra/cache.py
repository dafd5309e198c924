"""The cache backends: a Redis cache that degrades instead of failing, and a faster LocMem reader.

`ResilientRedisCache`: errors are logged and treated as misses. Its `get_many_recent` may
answer a key from what this process read from Redis a fraction of a second ago (the API-key
hot path's memo, docs/performance.md "Third pass"); every write this process makes through
the cache forgets the keys it touches at once. Invalidations that must land (a revoked key's
snapshot) are `set_many_strict` / `delete_many_strict`: tried even during the back-off, and
when Redis refuses them, owed: deleted before this process next uses Redis.

The cache only ever holds derived, expendable data (verification results, rate-limit
counters, revocation hints whose truth is in the database), so an unreachable Redis must
slow nothing down and break nothing. After a failure the backend skips Redis for a short
back-off, so a dead server does not cost a connect timeout on every call.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import time
from typing import Any

from django.core.cache import cache
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

#: Seconds during which Redis is not tried again after a failure.
BACKOFF_SECONDS = 2.0

#: An absent key, as remembered by `RecentReads`.
_ABSENT = object()


class RecentReads:
    """What one process read lately from one shared cache: key -> (monotonic time of the read, value).

    Shared by every thread's backend instance for the same server and prefix, so a write made
    through any of them forgets the key for all. `generation` moves on every write: a read that
    was in flight across a write is not remembered.
    """

    #: Keys remembered at most; past that, everything is forgotten (entries live < 1 s anyway).
    MAX = 4096

    def __init__(self) -> None:
        self.values: dict[str, tuple[float, Any]] = {}
        self.generation = 0

    def forget(self, keys) -> None:
        self.generation += 1
        for key in keys:
            self.values.pop(key, None)

    def forget_all(self) -> None:
        self.generation += 1
        self.values.clear()


#: Per process: the recent reads of each Redis cache, by (location, key prefix, version).
_RECENT: dict[tuple[str, str, int], RecentReads] = {}

#: Per process: the keys of each Redis cache whose invalidation Redis refused, to delete before
#: this process's next use of it (`ResilientRedisCache._settle`); same index as `_RECENT`.
_OWED: dict[tuple[str, str, int], set[str]] = {}


class PortalRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client, keeping one `redis.Redis` per connection pool.

    Django builds a new `redis.Redis` around the pool for every operation; with redis-py 8
    that construction cost about as much as packing the command. The client is thread-safe
    (its connections come from the pool), so one per pool serves every thread.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


class ResilientRedisCache(RedisCache):
    """Django's RedisCache, but every operation fails soft (miss / no-op) when Redis is down."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = PortalRedisCacheClient
        self._hot_client = None
        self._scripts: dict[str, str] = {}  # the SHA-1 digest of each Lua source (EVALSHA)
        self._down_until = 0.0
        self._last_log = 0.0
        self._recent = _RECENT.setdefault((str(server), self.key_prefix, self.version), RecentReads())
        self._owed = _OWED.setdefault((str(server), self.key_prefix, self.version), set())

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def is_down(self) -> bool:
        """Return whether the cache is backing off after a failure: what it answers meanwhile is a
        stand-in (`add`: False, `incr`: the delta), not a value it holds."""
        return not self._available()

    def refuses_connections(self) -> bool:
        """Return whether Redis refuses a connection now: then nothing sent would reach it.

        The fail-soft operations cannot tell a refused connection (nothing was sent) from a lost
        reply (Redis may have applied the command). No round trip: the pool hands out a connection
        it holds (after a poll of its socket) or opens one, and the next command takes it again
        (the pool hands out the connection returned last first).
        """
        pool = self._cache.get_client(None, write=True).connection_pool
        try:
            connection = pool.get_connection()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return True
        pool.release(connection)
        return False

    def _failed(self, operation: str, exc: Exception) -> None:
        self._down_until = time.monotonic() + BACKOFF_SECONDS
        self._log_failure(operation, exc)

    def _log_failure(self, operation: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_log > 10:
            self._last_log = now
            logger.warning(
                "cache unavailable during %s (%s); continuing without it", operation, type(exc).__name__
            )

    def _call(self, operation: str, default, func, *args, **kwargs):
        if not self._available():
            return default
        try:
            if self._owed:
                self._settle()
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  redis raises several hierarchies (ConnectionError, OSError…)
            if isinstance(exc, ValueError) and operation == "incr":
                raise  # a missing key: Django's documented incr() contract, not an outage
            if isinstance(exc, self._cache._lib.ResponseError):
                # Redis refused this one command (say, an expiry out of range): no outage, so no
                # back-off that would refuse every other tenant's replay checks meanwhile.
                self._log_failure(operation, exc)
                return default
            self._failed(operation, exc)
            return default

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return self._call("add", False, super().add, key, value, timeout, version)
        finally:
            self._recent.forget((key,))

    def get(self, key, default=None, version=None):
        return self._call("get", default, super().get, key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return self._call("set", None, super().set, key, value, timeout, version)
        finally:
            self._recent.forget((key,))

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return self._call("touch", False, super().touch, key, timeout, version)
        finally:
            self._recent.forget((key,))

    def delete(self, key, version=None):
        try:
            return self._call("delete", False, super().delete, key, version)
        finally:
            self._recent.forget((key,))

    def get_many(self, keys, version=None):
        return self._call("get_many", {}, super().get_many, keys, version)

    def get_many_recent(self, keys: list[str], max_age: float) -> tuple[dict[str, Any], list[str]]:
        """Return `get_many(keys)`, and which keys were answered from this process's recent reads.

        A key this process read from Redis here less than `max_age` seconds ago (and has not
        written since, through any thread) is answered from that read, without a round trip;
        the others are read with one `MGET` and remembered. The values are shared between
        callers: they must not be mutated. When Redis fails nothing is remembered.
        """
        now = time.monotonic()
        recent = self._recent
        remembered = recent.values
        found: dict[str, Any] = {}
        recalled: list[str] = []
        ask: list[str] = []
        for key in keys:
            entry = remembered.get(key)
            if entry is not None and now - entry[0] < max_age:
                recalled.append(key)
                if entry[1] is not _ABSENT:
                    found[key] = entry[1]
            else:
                ask.append(key)
        if ask:
            generation = recent.generation
            fetched = self._call("get_many", None, self._get_many_hot, ask)
            if fetched is None:
                return found, recalled  # Redis failed: treated as misses, as by get_many; nothing kept
            found.update(fetched)
            if recent.generation == generation:  # no write since the read began
                if len(remembered) + len(ask) > RecentReads.MAX:
                    remembered.clear()
                for key in ask:
                    # Aged from before the read: an entry never outlives max_age after Redis answered.
                    remembered[key] = (now, fetched.get(key, _ABSENT))
        return found, recalled

    def _get_many_hot(self, keys: list[str]) -> dict[str, Any]:
        """`get_many(keys)`: one `MGET` on a connection this backend instance keeps for itself.

        redis-py checks a connection out of the pool for every command, polling its socket
        for stray data and recording the pool's state; on the API-key hot path that cost a
        fifth of the read (docs/performance.md, "Fourth pass"). Django's caches are per thread,
        so this instance keeps one single-connection client (redis-py's own mode) for the hot
        read; a new process (a fork) opens its own. A connection the server has dropped (a
        restart, an idle timeout) fails one attempt, which the pool's checkout would have
        caught: the read is tried once more, on a new connection, before it counts as an outage.
        """
        client = self._hot_client
        if client is None or client.connection.pid != os.getpid():
            pool = self._cache.get_client(None).connection_pool
            client = self._cache._client(connection_pool=pool, single_connection_client=True)
            self._hot_client = client
        made = [self.make_key(key) for key in keys]
        try:
            values = client.execute_command("MGET", *made)
        except self._cache._lib.ConnectionError:
            values = client.execute_command("MGET", *made)  # reconnects: the failed one was closed
        loads = self._cache._serializer.loads
        return {key: loads(value) for key, value in zip(keys, values, strict=True) if value is not None}

    def validate_key(self, key):
        """Accept every key: the memcached rules Django checks by default do not bind Redis."""

    def has_key(self, key, version=None):
        return self._call("has_key", False, super().has_key, key, version)

    def incr(self, key, delta=1, version=None):
        try:
            return self._call("incr", delta, super().incr, key, delta, version)
        finally:
            self._recent.forget((key,))

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return self._call("set_many", list(data), super().set_many, data, timeout, version)
        finally:
            self._recent.forget(data)

    def delete_many(self, keys, version=None):
        keys = list(keys)
        try:
            return self._call("delete_many", None, super().delete_many, keys, version)
        finally:
            self._recent.forget(keys)

    def set_many_strict(self, data, timeout=DEFAULT_TIMEOUT) -> bool:
        """`set_many` for invalidations that must land (a revoked key's snapshot, a client's tombstone).

        Tried now even during the back-off: a write skipped in silence would leave every server
        reading what it meant to replace for the entry's whole lifetime. When Redis refuses it,
        it is logged at ERROR and the keys are owed: deleted before this process's next use of
        Redis (`_settle`), so this process never reads back what they held. Return whether
        Redis took the write now. (No `version`: what is owed is deleted at the default one.)
        """
        data = dict(data)
        try:
            return self._strict("set", data, lambda: super(ResilientRedisCache, self).set_many(data, timeout))
        finally:
            self._recent.forget(data)

    def delete_many_strict(self, keys) -> bool:
        """`delete_many` for invalidations that must land: as `set_many_strict`, the keys deleted."""
        keys = list(keys)
        try:
            return self._strict("delete", keys, lambda: super(ResilientRedisCache, self).delete_many(keys))
        finally:
            self._recent.forget(keys)

    def _strict(self, operation: str, keys, write) -> bool:
        if not keys:
            return True
        try:
            if self._owed:
                self._settle()
            failed = write()  # set_many answers the keys it did not store (none on Redis)
        except Exception as exc:  # noqa: BLE001  as in _call: any failure of the client
            failed, error = keys, exc
        else:
            error = None
        if not failed:
            return True
        self._owed.update(failed)
        if error is not None:
            self._failed(f"{operation} (strict)", error)
        logger.error(
            "could not invalidate %d cache key(s) (%s); they are deleted before this process uses the "
            "cache again, other servers may read them until then",
            len(failed),
            type(error).__name__ if error is not None else "not stored",
        )
        return False

    def _settle(self) -> None:
        """Delete the keys whose invalidation Redis refused earlier (raises as Redis does)."""
        owed = self._owed.copy()
        super().delete_many(owed)
        self._owed.difference_update(owed)
        logger.warning("made %d owed cache invalidation(s)", len(owed))

    def clear(self):
        try:
            return self._call("clear", False, super().clear)
        finally:
            self._recent.forget_all()

    def add_many(self, keys, value, timeout=DEFAULT_TIMEOUT, version=None) -> set[str] | None:
        """`add(key, value, timeout)` for every key in one round trip; return the keys that were added.

        `SET … NX EX` for each key, independently of the others, run by a Lua script per
        `SCRIPT_CHUNK` keys (one command instead of one per key: packing commands was most
        of the cost). Fails soft like every other operation, but says so: None when Redis did
        not answer (nothing is known of the keys), not an empty set ("all there already").
        """
        keys = list(dict.fromkeys(keys))
        ttl = self.get_backend_timeout(timeout)
        if not keys:
            return set()
        if ttl is None or ttl <= 0:
            return {key for key in keys if self.add(key, value, timeout, version)}
        stored = self._cache._serializer.dumps(value)

        def scripted() -> set[str]:
            made = [self.make_key(key, version=version) for key in keys]
            added = self._scripted(_ADD_MANY, made, lambda part: [stored, ttl])
            return {key for key, was_added in zip(keys, added, strict=True) if was_added}

        return self._call("add_many", None, scripted)

    def incr_many(self, deltas, timeout=DEFAULT_TIMEOUT, version=None) -> dict[str, int]:
        """Add each delta to its counter, creating it (with `timeout`) if missing; one round trip.

        Return each key's new value: a value equal to its delta means this call created the
        counter. `INCRBY` + `EXPIRE` per key (the expiry is set again on every call: a counter
        lives `timeout` after its last increment), run by a Lua script per `SCRIPT_CHUNK` keys.
        Fails soft like every other operation (an empty dict: nothing counted).
        """
        deltas = dict(deltas)
        if not deltas:
            return {}
        ttl = self.get_backend_timeout(timeout)
        keys = list(deltas)

        def scripted() -> dict[str, int]:
            made = [self.make_key(key, version=version) for key in keys]
            by_made = dict(zip(made, (int(deltas[key]) for key in keys), strict=True))
            totals = self._scripted(
                _INCR_MANY, made, lambda part: ["" if ttl is None else ttl, *(by_made[k] for k in part)]
            )
            return {key: int(total) for key, total in zip(keys, totals, strict=True)}

        return self._call("incr_many", {}, scripted)

    def _scripted(self, source: str, keys: list[str], args_of) -> list:
        """Run `source` over `keys` in chunks of `SCRIPT_CHUNK`, in one pipeline; return the answers joined.

        Chunks keep any one call short, so other clients' commands are served between them.
        `args_of(chunk)` gives each call's arguments. The script is sent by digest (`EVALSHA`);
        a server that does not have it yet (a restart, a flush) gets it loaded, once.
        """
        client = self._cache.get_client(None, write=True)
        sha = self._scripts.get(source)
        if sha is None:
            sha = self._scripts[source] = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        chunks = [keys[start : start + SCRIPT_CHUNK] for start in range(0, len(keys), SCRIPT_CHUNK)]

        def run() -> list:
            pipeline = client.pipeline(transaction=False)
            for part in chunks:
                pipeline.evalsha(sha, len(part), *part, *args_of(part))
            return pipeline.execute(raise_on_error=False)

        answers = run()
        if any(isinstance(answer, self._cache._lib.exceptions.NoScriptError) for answer in answers):
            client.script_load(source)
            answers = run()
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        return [value for values in answers for value in values]


#: Keys per Lua call of `add_many` / `incr_many` (a call blocks Redis while it runs).
SCRIPT_CHUNK = 500

#: KEYS: the keys; ARGV[1]: the stored value; ARGV[2]: seconds. One 0/1 per key: added or not.
_ADD_MANY = """
local added = {}
for i, key in ipairs(KEYS) do
  added[i] = redis.call('SET', key, ARGV[1], 'NX', 'EX', ARGV[2]) and 1 or 0
end
return added
"""

#: KEYS: the counters; ARGV[1]: seconds ('' for none); ARGV[i + 1]: the delta of KEYS[i]. New values.
_INCR_MANY = """
local totals = {}
for i, key in ipairs(KEYS) do
  totals[i] = redis.call('INCRBY', key, ARGV[i + 1])
  if ARGV[1] ~= '' then redis.call('EXPIRE', key, ARGV[1]) end
end
return totals
"""


class PortalLocMemCache(LocMemCache):
    """Django's per-process LocMemCache, plus `get_shared` for read-only hot-path snapshots.

    `get` unpickles a fresh copy of the stored value on every call; on an API key's cache
    hit that copy cost more than the HMAC (docs/performance.md). `get_shared` answers exactly
    what `get` would — the same entry, expiry, LRU order, `delete`, `clear` and `set` — but
    keeps the value it unpickled beside the stored bytes and hands the same object out again
    for as long as those very bytes are stored. Callers must not mutate what it returns.
    """

    #: Unpickled values kept at most (their pickled bytes stay referenced until replaced).
    SHARED_MAX = 2048

    def __init__(self, name, params):
        super().__init__(name, params)
        self._shared: dict[str, tuple[bytes, Any]] = {}

    def get_shared(self, key: str, default: Any = None, version: int | None = None) -> Any:
        # The caller's own fixed-format key (prefix + base62): Django's memcached-portability
        # key warnings are skipped here, not the lookup.
        key = self.make_key(key, version=version)
        with self._lock:
            if self._has_expired(key):
                self._delete(key)
                return default
            pickled = self._cache[key]
            self._cache.move_to_end(key, last=False)
        return self._unpickled(key, pickled)

    def _unpickled(self, key: str, pickled: bytes) -> Any:
        entry = self._shared.get(key)
        if entry is not None and entry[0] is pickled:
            return entry[1]
        value = pickle.loads(pickled)  # noqa: S301  what this process's own set() stored, as LocMemCache.get
        if len(self._shared) >= self.SHARED_MAX:
            self._shared.clear()
        self._shared[key] = (pickled, value)
        return value

    def get_stamped(self, key: str, version: int | None = None) -> tuple[Any, tuple[str, bytes]] | None:
        """Return what `get_shared` returns, with a stamp of the entry it came from; None on a miss.

        `holds(stamp)` then answers, without unpickling or key building, whether that very entry
        is still stored and unexpired: a `set`, `add` after expiry, `delete`, `clear` or
        the expiry itself makes it False at once.
        """
        key = self.make_key(key, version=version)
        with self._lock:
            if self._has_expired(key):
                self._delete(key)
                return None
            pickled = self._cache[key]
            self._cache.move_to_end(key, last=False)
        return self._unpickled(key, pickled), (key, pickled)

    def holds(self, stamp: tuple[str, bytes]) -> bool:
        """Return whether the entry `get_stamped` stamped is still stored and unexpired.

        True counts as a read of the entry, like `get`: it moves to the front of the LRU order.
        """
        key, pickled = stamp
        with self._lock:
            if self._cache.get(key) is not pickled:
                return False
            expires = self._expire_info.get(key, -1)
            if expires is not None and expires <= time.time():
                return False  # the next get() or get_stamped() drops it, as LocMemCache does
            self._cache.move_to_end(key, last=False)
        return True


def cache_is_down() -> bool:
    """Return whether the default cache says it is down (`ResilientRedisCache.is_down`, backing
    off after a failure); a per-process cache never is."""
    is_down = getattr(cache, "is_down", None)
    return is_down is not None and is_down()


def cache_refuses_connections() -> bool:
    """Return whether the default cache's Redis refuses a connection now
    (`ResilientRedisCache.refuses_connections`); a per-process cache never does."""
    refuses = getattr(cache, "refuses_connections", None)
    return refuses is not None and refuses()
