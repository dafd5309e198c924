"""Token issuance quotas per application: tokens per clock hour and per UTC day (docs/m2m.md#limits).

An application with its own quota (`tokens_per_hour`, `tokens_per_day`) is held to it instead of
the global `PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE`; one with neither keeps the global limit.
The counters are fixed windows in the shared cache (`portal.infra.ratelimit`) and count issued
tokens, both grants. Their keys are read in the token request's one cache round trip
(`hot_keys`, named before the client is authenticated: the application is not known yet, so
both windows of the client id the request claims are read, whatever its quota). A quota in
`log_only` mode never refuses: the token is issued, a warning logged and the metric counted.

The check reads the counters before the token is issued and the count happens once it is, so
concurrent requests of one application can pass a quota by at most the number in flight.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from portal.infra import ratelimit
from portal.infra.metrics import observe_token_quota_exceeded
from tokens.models import M2MApplication

log = logging.getLogger(__name__)

#: (window name, application field, seconds): fixed windows aligned on the epoch, so UTC hours and days.
WINDOWS = (("hour", "tokens_per_hour", 3600), ("day", "tokens_per_day", 86400))


def _scope(window: str) -> str:
    return f"oauth-issuance-quota:{window}"


def hot_keys(client_id: str) -> list[str]:
    """Return the counter keys `exceeded` may read for `client_id` now (both windows)."""
    return ratelimit.hot_keys(
        [(_scope(window), client_id, ratelimit.Limit(1, seconds)) for window, _field, seconds in WINDOWS]
    )


def has_quota(application: M2MApplication) -> bool:
    """Return whether the application has a quota of its own (then the global per-minute limit is off)."""
    return bool(application.tokens_per_hour or application.tokens_per_day)


def _limits(application: M2MApplication) -> list[tuple[str, ratelimit.Limit]]:
    return [
        (window, ratelimit.Limit(getattr(application, field), seconds))
        for window, field, seconds in WINDOWS
        if getattr(application, field)
    ]


@dataclass(frozen=True)
class Exceeded:
    """A used-up quota: the longest `wait` (seconds) and the windows used up."""

    wait: int
    windows: tuple[str, ...]


def exceeded(application: M2MApplication) -> Exceeded | None:
    """Return the quotas of the application used up now, or None (none, or log-only mode).

    Log-only mode: a warning (client id, windows, quotas; never a secret) and the metric, then None.
    A cache outage reads as room (fail open, as every issuance limit).
    """
    waits = {}
    for window, limit in _limits(application):
        wait = ratelimit.retry_after(_scope(window), application.client_id, limit)
        if wait is not None:
            waits[window] = wait
    if not waits:
        return None
    mode = application.token_quota_mode
    for window in waits:
        observe_token_quota_exceeded(window, mode)
    if mode == M2MApplication.QuotaMode.LOG_ONLY:
        log.warning(
            "Token quota used up (log only, token issued): client_id=%s windows=%s per_hour=%s per_day=%s",
            application.client_id,
            ",".join(waits),
            application.tokens_per_hour,
            application.tokens_per_day,
        )
        return None
    return Exceeded(wait=max(waits.values()), windows=tuple(waits))


def count_issued(application: M2MApplication) -> None:
    """Count one issued token in every window of the application's quota."""
    for window, limit in _limits(application):
        ratelimit.hit(_scope(window), application.client_id, limit)
