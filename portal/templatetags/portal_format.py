"""Template helpers for showing times the way people read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

register = template.Library()


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
        text = f"{timesince(value, now, depth=1)} ago"
    else:
        text = f"in {timeuntil(value, now, depth=1)}"
    return format_html(
        '<time datetime="{}" title="{} UTC">{}</time>',
        value.isoformat(),
        value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        text,
    )
