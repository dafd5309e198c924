"""Issuer keys held by one process while the shared cache (Redis) is down.

The shared cache holds each issuer's fetched keys and the guard that allows one refresh per
interval across every app server (`trust.issuer_keys`). While Redis is down its `add` answers
False for every key, which would read as "fetched moments ago" for every issuer, and its reads
miss: no token of a discovery-based trust would verify. Meanwhile each process keeps its own
guard and its own copy of the keys it fetched, so it fetches an issuer's keys at most once per
interval and tokens verify as before (a token with a `jti` still fails closed: its replay check
needs the shared cache).

Bounded: at most MAX_ISSUERS issuers are held; past that the oldest entry makes room. Guarded by
a lock, since one process serves several threads.
"""

from __future__ import annotations

import threading
import time

#: Issuers held per process (a trust is made by a person, so real installations have few).
MAX_ISSUERS = 256

_lock = threading.Lock()
#: Issuer digest -> (monotonic time of the fetch, the keys fetched).
_keys: dict[str, tuple[float, list[dict]]] = {}
#: Issuer digest -> monotonic time the guard ends (a fetch, or a try, was made before it).
_guards: dict[str, float] = {}


def _make_room(held: dict) -> None:
    while len(held) >= MAX_ISSUERS:
        held.pop(next(iter(held)))  # dicts keep insertion order: the oldest entry first


def keys(digest: str, max_age: float) -> list[dict] | None:
    """Return the keys this process fetched for the issuer at most `max_age` seconds ago, or None."""
    with _lock:
        held = _keys.get(digest)
        if held is None:
            return None
        if time.monotonic() - held[0] > max_age:
            del _keys[digest]
            return None
        return list(held[1])


def remember(digest: str, fetched: list[dict]) -> None:
    """Hold an issuer's freshly fetched keys in this process."""
    with _lock:
        _keys.pop(digest, None)
        _make_room(_keys)
        _keys[digest] = (time.monotonic(), list(fetched))


def take_guard(digest: str, interval: float) -> bool:
    """Return True, and hold the issuer's guard for `interval` seconds, if this process holds none."""
    now = time.monotonic()
    with _lock:
        until = _guards.pop(digest, None)
        if until is not None and now < until:
            _guards[digest] = until
            return False
        for held, ends in list(_guards.items()):  # expired guards first, then the oldest
            if ends <= now:
                del _guards[held]
        _make_room(_guards)
        _guards[digest] = now + interval
        return True


def release_guard(digest: str) -> None:
    """Drop the issuer's guard in this process (a first fetch that worked holds none)."""
    with _lock:
        _guards.pop(digest, None)


def forget(digest: str) -> None:
    """Drop what this process holds for the issuer: its keys and its guard."""
    with _lock:
        _keys.pop(digest, None)
        _guards.pop(digest, None)
