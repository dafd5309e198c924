"""Bounds on credential lifetimes: an expiry at most ten years ahead, and arithmetic that cannot overflow.

Every lifetime that enters the portal (REST `expires_at`/`expires_in_days`, the dashboard's
"Expires in (days)", `create_api_key --expires-in-days`, a requested lifetime, a rotation's
successor) goes through `credentials.governance.org_policy.check_lifetime`, which applies the
organisation's maximum and, without one, `MAX_LIFETIME_DAYS`. Python's `datetime` ends at
9999-12-31, so `now + lifetime` could raise OverflowError (a 500); these helpers clamp instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

#: The longest lifetime any credential may be given: ten years (of 365 days).
MAX_LIFETIME_DAYS = 3650
MAX_LIFETIME = timedelta(days=MAX_LIFETIME_DAYS)
#: Clock slack for a client that computed `now + N days` a moment before the portal did.
GRACE = timedelta(minutes=5)
#: A working credential "expires soon" within this: the inventory's `expiring` flag, the attention
#: hub, the notices and webhooks (credentials.governance) and the API key pages' badge alike.
EXPIRING_WITHIN = timedelta(days=14)

_LATEST = datetime.max.replace(tzinfo=UTC)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def add_clamped(start: datetime, delta: timedelta) -> datetime:
    """Return `start + delta`, or the last (first) representable instant instead of overflowing."""
    try:
        return start + delta
    except OverflowError:
        return _LATEST if delta > timedelta(0) else _EARLIEST


def expiry_in_days(days: int, *, now: datetime | None = None) -> datetime:
    """Return the instant `days` days from now, clamped (a huge `days` cannot raise)."""
    now = now or timezone.now()
    try:
        delta = timedelta(days=days)
    except OverflowError:
        return _LATEST if days > 0 else _EARLIEST
    return add_clamped(now, delta)


def check_expiry(expires_at: datetime, *, now: datetime | None = None) -> None:
    """Refuse an expiry more than ten years ahead, as a field error on `expires_at`."""
    if expires_at > add_clamped(expiry_in_days(MAX_LIFETIME_DAYS, now=now), GRACE):
        raise ValidationError(
            {"expires_at": f"Choose an expiry at most {MAX_LIFETIME_DAYS} days (ten years) ahead."},
            code="max_lifetime",
        )


def successor_expiry(
    *, created_at: datetime, expires_at: datetime | None, now: datetime, max_days: int = MAX_LIFETIME_DAYS
) -> datetime | None:
    """Return the expiry of a successor that keeps its predecessor's lifetime, counted from `now`.

    The lifetime is bounded by `max_days` (and ten years), so a predecessor that entered with
    an absurd expiry (9999-12-31, before these bounds) gets a successor within them. A
    predecessor without expiry gives None: the caller applies the policy's maximum, if any.
    """
    if expires_at is None:
        return None
    lifetime = min(expires_at - created_at, timedelta(days=min(max_days, MAX_LIFETIME_DAYS)))
    return add_clamped(now, max(lifetime, timedelta(0)))
