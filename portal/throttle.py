"""A small cache-based guard against password guessing, per account and per client IP."""

from __future__ import annotations

import contextlib
import hashlib

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext_lazy as _

THROTTLED_MESSAGE = _(
    "Too many failed sign-in attempts. For your security, sign-in is paused for a while; "
    "try again in 15 minutes or reset your password."
)


def _key(kind: str, value: str) -> str:
    # Hash the identifier so cache keys are bounded and carry no raw emails.
    return f"login-fail:{kind}:{hashlib.sha256(value.lower().encode()).hexdigest()[:32]}"


def _limits(email: str, ip: str | None) -> list[tuple[str, int]]:
    keys = [(_key("acct", email), settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT)]
    if ip:
        keys.append((_key("ip", ip), settings.PORTAL_LOGIN_MAX_FAILURES_PER_IP))
    return keys


def login_blocked(email: str, ip: str | None) -> bool:
    """Return whether too many recent failures block this account or IP."""
    try:
        counts = cache.get_many([key for key, _ in _limits(email, ip)])
    except Exception:  # noqa: BLE001  a cache outage must not lock everyone out
        return False
    return any(counts.get(key, 0) >= limit for key, limit in _limits(email, ip))


def login_failed(email: str, ip: str | None) -> None:
    """Count one failed login against the account and the IP."""
    for key, _limit in _limits(email, ip):
        try:
            if not cache.add(key, 1, settings.PORTAL_LOGIN_LOCKOUT_SECONDS):
                cache.incr(key)
        except Exception:  # noqa: BLE001, S112
            continue


def login_succeeded(email: str) -> None:
    """Forget the account's failures after a successful login."""
    with contextlib.suppress(Exception):
        cache.delete(_key("acct", email))
