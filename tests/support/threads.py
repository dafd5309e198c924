"""Run callables at once in threads, each with its own database connection (closed after), for
the PostgreSQL race tests: `results = run_together(("one", fn), ("two", fn))`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import connection
from django.test import Client


def run_together(*targets: tuple[str, Callable[[], object]], timeout: float = 30) -> dict[str, object]:
    """Start every `(name, fn)` in its own thread, wait for all; return `{name: result or exception}`."""
    results: dict[str, object] = {}

    def wrap(name: str, fn: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                results[name] = fn()
            except BaseException as exc:  # noqa: BLE001  the test reports whatever happened
                results[name] = exc
            finally:
                connection.close()

        return threading.Thread(target=run, name=name)

    threads = [wrap(name, fn) for name, fn in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


def at_once(calls: dict[str, Callable[[], object]], timeout: float = 30) -> dict[str, object]:
    """Run each `{name: fn}` in its own thread, all released by one barrier; answer as `run_together`."""
    barrier = threading.Barrier(len(calls))

    def released(fn: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            barrier.wait(timeout=10)
            return fn()

        return call

    return run_together(*((name, released(fn)) for name, fn in calls.items()), timeout=timeout)


def post_at_once(user, calls: dict[str, tuple[str, dict]]) -> dict[str, int]:
    """POST each `{name: (path, JSON body)}` as `user`, each from its own session and connection, all
    at once (a barrier releases them together); return `{name: status}`."""
    barrier = threading.Barrier(len(calls))

    def post(path: str, body: dict) -> Callable[[], int]:
        client = Client(raise_request_exception=False)
        client.force_login(user)

        def call() -> int:
            barrier.wait(timeout=10)
            return client.post(path, body, "application/json").status_code

        return call

    answers = run_together(*((name, post(path, body)) for name, (path, body) in calls.items()))
    assert all(isinstance(status, int) for status in answers.values()), answers
    return answers


def pause_in(monkeypatch, owner, name: str, *, thread: str, seconds: float = 1.0) -> threading.Event:
    """Make `owner.name` wait `seconds` before it runs when the thread named `thread` calls it; return
    an event set at that moment (the thread holds the locks it took before the call, not yet committed)."""
    reached = threading.Event()
    real = getattr(owner, name)

    def paused(*args, **kwargs):
        if threading.current_thread().name == thread:
            reached.set()
            time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, paused)
    return reached
