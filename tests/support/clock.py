"""The clock of the fixed-window rate limits, held still for a test (or moved only by the test).

The limits count in fixed windows of the shared cache, keyed by `int(time.time() // window)`
(`portal.infra.ratelimit`: failed client authentication and key verifications, token issuance,
a credential's own runtime limit, the hourly and daily token quotas; `credentials.policy` reads
the same clock for the window's reset). Requests that straddle a window's end are counted in two
windows, so a test that sends N + 1 and expects the last to be refused (or counts what was
refused) fails when a minute, hour or day ends between its requests: it did on CI.

- `rate_clock` (a fixture every test may ask for, registered in tests/conftest.py): the limiters
  read a clock standing in the middle of the current minute for the whole test; a test that must
  cross a window moves it (`rate_clock.advance(60)`, or sets `rate_clock.now`). Only what the
  limiters read is pinned: usage metering, token times, sessions and the caches keep real time.
  The test Client runs each request in this process, so the limiters see the pinned clock.
- `wait_for_window_room(window, needed)`: a server in another process (gunicorn, runserver) reads
  the real clock and no pin reaches it, so such a test waits, before its counted requests, until
  `needed` seconds of the current window are left (at most `needed` seconds, rarely).
"""

from __future__ import annotations

import time

import pytest

#: The module attributes the fixed-window limiters read `time.time()` through.
LIMITER_CLOCKS = ("portal.infra.ratelimit.time", "credentials.policy.time")


class RateClock:
    """A stand-in for the `time` module: `time()` is `now`, which moves only when a test moves it.

    Anything else (`monotonic`, `sleep`, …) is the real `time` module's.
    """

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __getattr__(self, name: str):
        return getattr(time, name)


def middle_of_the_minute(now: float | None = None) -> float:
    """Return the middle of the minute `now` (default: the present) falls in."""
    now = time.time() if now is None else now
    return (now // 60) * 60 + 30


@pytest.fixture
def rate_clock(monkeypatch) -> RateClock:
    """Hold the fixed-window limiters' clock in the middle of the current minute for the test."""
    clock = RateClock(middle_of_the_minute())
    for target in LIMITER_CLOCKS:
        monkeypatch.setattr(target, clock)
    return clock


def wait_for_window_room(window: int = 60, needed: float = 10.0) -> None:
    """Sleep into the next fixed window if fewer than `needed` seconds of the current one are left.

    For requests counted by a server in another process, which the `rate_clock` cannot reach.
    """
    left = window - time.time() % window
    if left < needed:
        time.sleep(left + 0.05)
