"""Template helpers for showing times the way people read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html

from portal.audit_text import action_label, details_text

register = template.Library()

_DAY = 86400


def distance(seconds: float) -> str:
    """Return a distance in time rounded to the nearest unit ("3\xa0months" for 90 days, not 2).

    Django's `timesince` truncates, so 90 days read as "2 months" and 14 days as "1 week".
    """
    seconds = abs(seconds)
    if seconds < 90 * 60:
        value, unit = max(round(seconds / 60), 1), "minute"
    elif seconds < 36 * 3600:
        value, unit = round(seconds / 3600), "hour"
    elif seconds < 28 * _DAY:
        value, unit = round(seconds / _DAY), "day"
    elif seconds < 320 * _DAY:
        value, unit = round(seconds / (30.44 * _DAY)), "month"
    else:
        value, unit = round(seconds / (365.25 * _DAY)), "year"
    return f"{value}\xa0{unit}{'' if value == 1 else 's'}"


_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": _DAY}


def duration(seconds: float) -> str:
    """Return a length of time in words as `distance` says it, unless that rounds it: an overlap of
    36 hours is "36\xa0hours", not "2\xa0days"; of 90 seconds, "90\xa0seconds"."""
    text = distance(seconds)
    value, unit = text.split("\xa0")
    if int(value) * _UNIT_SECONDS.get(unit.removesuffix("s"), 0) == abs(seconds):
        return text
    for unit, size in sorted(_UNIT_SECONDS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            count = int(abs(seconds) // size)
            return f"{count}\xa0{unit}{'' if count == 1 else 's'}"
    return f"{seconds:g}\xa0second{'' if seconds == 1 else 's'}"


@register.simple_tag
def relative_time(value: datetime | None, default: str = "—"):
    """Render `<time>` with a relative text ("3 hours ago", "in 2 days") and the exact UTC time on hover.

    Usage: `{% load portal_format %}{% relative_time key.last_used_at default="never" %}`.
    """
    if value is None:
        return default
    now = timezone.now()
    if abs(now - value) < timedelta(minutes=1):
        text = "just now"
    elif value < now:
        text = f"{distance((now - value).total_seconds())} ago"
    else:
        text = f"in {distance((value - now).total_seconds())}"
    return format_html(
        '<time datetime="{}" title="{} UTC">{}</time>',
        value.isoformat(),
        value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        text,
    )


@register.filter
def audit_action(action: str) -> str:
    """Return an audit action in words: `credentials.api_key.rotated` → "API key rotated"."""
    return action_label(action or "")


@register.filter
def audit_details(extra) -> str:
    """Return an audit event's extra data as a readable line (never a Python repr), times and
    durations as the pages show them (the CSV export keeps the recorded values)."""
    return details_text(extra if isinstance(extra, dict) else None, duration=duration)
