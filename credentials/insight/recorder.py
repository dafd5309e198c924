"""Record, per credential, its client IPs, its denials and the scopes its requests needed, with no I/O.

`note()` runs inside `credentials.usage.record()` (under its lock, so one lock per request
for both): a few dict updates, with the client IP and path taken from the request context.
`take()` hands the process's notes to `credentials.usage.flush()`, which passes them to
`push()`: **one** cache entry per flush (not per request, not per credential) holding every
credential's notes of that flush, listed under a per-minute slot counter like the usage
series (`add` + `incr` + `set`: three cache operations per flush, every
`PORTAL_USAGE_FLUSH_SECONDS` per process). The roll-up (credentials.insight.rollup) claims
each entry once (`cache.add` of a claim mark), so two roll-ups never count an entry twice.

Bounded everywhere: per credential, at most `MAX_IPS_PER_FLUSH` distinct IPs between two
flushes that take the notes (more are dropped, so a request from a new address per call cannot
grow memory), the last `MAX_RECENT` denials, and only the scopes the credential holds. A flush
that sends nothing (the cache's back-off, a refused connection), or whose counters just failed
(they go first), keeps the notes for the next one (`hold`), for at most `MAX_HELD_SERIES`
credentials.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from django.core.cache import cache

from credentials.insight.models import ENDPOINT_LENGTH
from portal import authz
from portal.infra.log_filters import one_line, redact
from portal.infra.request_context import current_request_context

logger = logging.getLogger(__name__)

MAX_RECENT = 20
MAX_IPS_PER_FLUSH = 100
CACHE_SECONDS = 6 * 3600
#: Credentials whose notes a flush during the cache's back-off keeps, at most (each one's are bounded).
MAX_HELD_SERIES = 10_000
PREFIX = "usage:v1:x:"

Series = tuple[str, str, int]  # kind, credential id, organisation id

_ips: dict[Series, dict[str, list]] = {}
_denials: dict[Series, deque] = {}
_scopes: dict[Series, dict[str, list]] = {}


def note(
    series: Series, outcome: str, scopes: tuple[str, ...] | frozenset[str] = (), ip: str | None = None
) -> None:
    """Note one use of a credential; the caller holds `credentials.usage`'s lock.

    `ip` None: the request's client address; "": unknown (nothing noted for it).
    """
    context = current_request_context()
    if ip is None:
        ip = context.ip if context is not None else None
    now = time.time()
    if ip:
        seen = _ips.setdefault(series, {})
        entry = seen.get(ip)
        if entry is not None:
            entry[0] += 1
            entry[1] = now
        elif len(seen) < MAX_IPS_PER_FLUSH:
            seen[ip] = [1, now]
    if outcome != "valid":
        # Kept in Redis, then in UsageDenial and on the credential's page: what a client put in the
        # path (a key pasted where an id goes) is masked as in the logs, then the path shortened.
        path = one_line(redact(context.path))[:ENDPOINT_LENGTH] if context is not None else ""
        _denials.setdefault(series, deque(maxlen=MAX_RECENT)).append((now, outcome, ip or None, path))
    for scope in scopes:
        entry = _scopes.setdefault(series, {}).get(scope)
        if entry is None:
            _scopes[series][scope] = [1, now]
        else:
            entry[0] += 1
            entry[1] = now


def take() -> dict:
    """Return the process's notes and forget them; the caller holds `credentials.usage`'s lock."""
    notes = {}
    for series in {*_ips, *_denials, *_scopes}:
        ips = sorted(_ips.get(series, {}).items(), key=lambda item: item[1][1], reverse=True)
        notes["|".join(map(str, series))] = {
            "ips": dict(ips[:MAX_RECENT]),
            "denials": list(_denials.get(series, ())),
            "scopes": _scopes.get(series, {}),
        }
    _ips.clear()
    _denials.clear()
    _scopes.clear()
    return notes


def holding() -> bool:
    """Return whether any notes wait for a flush (notes a flush kept back without counts, say)."""
    return bool(_ips or _denials or _scopes)


def hold() -> None:
    """Keep the notes for the next flush, dropping the credentials noted first past `MAX_HELD_SERIES`;
    the caller holds `credentials.usage`'s lock."""
    if len(_ips) + len(_denials) + len(_scopes) <= MAX_HELD_SERIES:
        return  # the usual case, known without building the union of the three
    noted = list(dict.fromkeys([*_ips, *_denials, *_scopes]))
    for series in noted[: len(noted) - MAX_HELD_SERIES]:
        _ips.pop(series, None)
        _denials.pop(series, None)
        _scopes.pop(series, None)


def push(notes: dict, minute: int) -> None:
    """Store one flush's notes in the cache as one entry, listed under `minute` (fails open)."""
    if not notes:
        return
    listing = f"{PREFIX}n:{minute}"
    try:
        cache.add(listing, 0, CACHE_SECONDS)
        slot = cache.incr(listing)
        cache.set(f"{PREFIX}{minute}:{slot}", notes, CACHE_SECONDS)
    except Exception:  # noqa: BLE001  metering fails open
        logger.warning("Usage insight could not be stored; it is dropped", exc_info=True)


def scopes_needed(request, held: frozenset[str] | set[str]) -> tuple[tuple[str, ...], bool]:
    """Return the scopes a DRF request needs that the credential holds, and whether it holds enough.

    "Where the API says so": the view's `required_scopes` (portal.permissions.HasScopes) and
    the scope of its authority action (portal.authz.RULES, any one of a tuple will do).
    """
    view = (getattr(request, "parser_context", None) or {}).get("view")
    if view is None:
        return (), True
    needed = set(getattr(view, "required_scopes", ()))
    enough = needed <= held
    try:
        action = view.authz_action() if hasattr(view, "authz_action") else None
    except LookupError:
        action = None
    rule = authz.RULES.get(action) if action else None
    if rule is not None and rule.scope:
        options = {rule.scope} if isinstance(rule.scope, str) else set(rule.scope)
        needed |= options & held
        enough = enough and bool(options & held)
    return tuple(sorted(needed & held)), enough
