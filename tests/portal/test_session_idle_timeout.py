"""The idle timeout never ends a session before it has been idle for PORTAL_SESSION_IDLE_SECONDS.

What was wrong: SessionTimeoutMiddleware recorded last-seen only when the recorded value was more
than 60 s old, yet measured idleness from that value as if it were the last request. With an idle
timeout under a minute (the setting accepts any value >= 1) a person clicking every 20 s was signed
out; with any timeout a session could end up to 60 s before it had been idle that long. Now the
resolution is a tenth of the timeout (1-60 s) and the check allows for it.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.account_security import middleware
from portal.account_security.events import SEEN_AT

pytestmark = pytest.mark.django_db


class _Clock:
    """Stands in for the `time` module the middleware reads."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(member_client, monkeypatch) -> _Clock:
    clock = _Clock(member_client.session[SEEN_AT])
    monkeypatch.setattr(middleware, "time", clock)
    return clock


def _home_status(client) -> int:
    return client.get(reverse("org-home", args=["acme"])).status_code


def test_a_session_in_use_is_not_ended_as_idle(member_client, settings, clock):
    settings.PORTAL_SESSION_IDLE_SECONDS = 30
    start = clock.now
    for seconds in (20, 40, 60):  # a request every 20 s: never 30 s without one
        clock.now = start + seconds
        assert _home_status(member_client) == 200, f"signed out {seconds} s after sign-in, 20 s idle"


def test_a_session_is_not_ended_before_the_idle_time_has_passed(member_client, settings, clock):
    idle = settings.PORTAL_SESSION_IDLE_SECONDS  # the default: a minute's resolution
    start = clock.now
    clock.now = start + 59  # too soon after the recorded time to be recorded itself
    assert _home_status(member_client) == 200
    clock.now = start + 59 + idle - 58
    assert _home_status(member_client) == 200, f"ended after {idle - 58} s without a request (limit {idle})"


@pytest.mark.parametrize("idle", [1, 30, 3600])
def test_an_idle_session_ends_within_the_resolution_after_the_idle_time(member_client, settings, clock, idle):
    settings.PORTAL_SESSION_IDLE_SECONDS = idle
    clock.now += idle + middleware.seen_resolution_seconds(idle) + 1
    response = member_client.get(reverse("org-home", args=["acme"]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_resolution_is_a_tenth_of_the_idle_time_between_one_second_and_a_minute():
    assert [middleware.seen_resolution_seconds(idle) for idle in (1, 30, 300, 600, 3600)] == [
        1,
        3,
        30,
        60,
        60,
    ]
