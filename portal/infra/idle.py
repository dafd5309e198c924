"""The idle flush: what a process holds (last uses, usage counts) reaches its store even when no
request comes to flush it.

Requests flush at their end when the interval has passed; a process that goes quiet would keep
what it holds until its next request, or its exit. The first item held after a flush arms a
timer, 2 × the interval later; if requests have flushed meanwhile, what is held now is younger
and the timer is armed again for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class IdleFlush:
    """One timer per holder. `arm()` and `flushed()` are called with `lock` held, by the holder."""

    def __init__(
        self,
        name: str,
        *,
        lock: threading.Lock,
        interval: Callable[[], float],
        holding: Callable[[], bool],
        flush: Callable[[], object],
        after: Callable[[], object] | None = None,
    ) -> None:
        self.name = name
        self.lock = lock
        self.interval = interval
        self.holding = holding
        self.flush = flush
        self.after = after  # run in the timer's thread after its flush (close its connections)
        self.timer: threading.Timer | None = None
        self.generation = 0

    def arm(self) -> None:
        """Start the timer unless it runs or the interval is 0 (the caller holds the lock)."""
        if self.timer is not None:  # the common case, on every item held: one test
            return
        seconds = self.interval()
        if seconds <= 0:
            return
        timer = threading.Timer(2 * seconds, self._fire, args=(self.generation,))
        timer.daemon = True
        timer.name = self.name
        self.timer = timer
        timer.start()

    def flushed(self) -> None:
        """Note a flush (the caller holds the lock): a timer armed before it re-arms for what follows."""
        self.generation += 1

    def cancel(self) -> None:
        """Stop a running timer (tests: nothing held must reach the next test)."""
        with self.lock:
            timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()

    def _fire(self, generation: int) -> None:
        with self.lock:
            self.timer = None
            if not self.holding():
                return
            if generation != self.generation:
                self.arm()  # requests have flushed since: what is held now is younger
                return
        try:
            self.flush()
        finally:
            if self.after is not None:
                self.after()
