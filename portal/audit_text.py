"""Audit events in words people read: "API key rotated" for `credentials.api_key.rotated`, and
extra data as "scopes: orders:read, orders:write; lifetime: from none to 30" instead of Python reprs."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

#: Seconds → words ("24\xa0hours"); the pages pass theirs (portal.templatetags.portal_format).
Duration = Callable[[float], str]
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_SECONDS = "_seconds"

# Nouns whose plain capitalised form reads wrong; any other noun is its words, capitalised.
_NOUNS = {
    "api_key": "API key",
    "m2m_app": "M2M application",
    "access_token": "Access token",
    "mfa": "Two-factor",
    "organization": "Organisation",
    "webhook": "Webhook endpoint",
    "leak_report": "Leak report",
}
_WORDS = {"mfa": "two-factor", "m2m": "M2M", "ip": "IP", "ips": "IPs", "url": "URL", "id": "ID", "api": "API"}


def _words(name: str) -> str:
    return " ".join(_WORDS.get(word, word) for word in name.split("_"))


def action_label(action: str) -> str:
    """Return `credentials.api_key.rotated` as "API key rotated" (unknown shapes: the words as they are)."""
    parts = action.split(".")
    if len(parts) < 3:
        return _words(action.replace(".", " ")).capitalize()
    noun, verb = parts[-2], parts[-1]
    label = _NOUNS.get(noun) or _words(noun).capitalize()
    return f"{label} {_words(verb)}"


def _value(value: Any, duration: Duration | None = None) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_value(item, duration) for item in value) if value else "none"
    if isinstance(value, dict):
        if set(value) <= {"from", "to"}:
            return f"from {_value(value.get('from'), duration)} to {_value(value.get('to'), duration)}"
        return _pairs(value, duration)
    if duration is not None and isinstance(value, str) and _ISO_DATETIME.match(value):
        return _when(value)
    return str(value)


def _when(value: str) -> str:
    """Return an ISO 8601 time as the pages show times: "2026-12-09 01:16 UTC"."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pair(key: str, value: Any, duration: Duration | None) -> str:
    name = key.removesuffix(_SECONDS)
    # `per_seconds` is half of a rate limit, written as the policy form takes it: left as it is.
    if duration is not None and name not in (key, "", "per"):
        if _is_number(value):
            return f"{_words(name)}: {duration(value)}"
        if isinstance(value, dict) and set(value) <= {"from", "to"}:
            ends = [value.get("from"), value.get("to")]
            if all(end is None or _is_number(end) for end in ends):
                start, stop = ("none" if end is None else duration(end) for end in ends)
                return f"{_words(name)}: from {start} to {stop}"
    return f"{_words(key)}: {_value(value, duration)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pairs(extra: dict[str, Any], duration: Duration | None) -> str:
    return "; ".join(_pair(str(key), value, duration) for key, value in sorted(extra.items()))


def details_text(extra: dict[str, Any] | None, *, duration: Duration | None = None) -> str:
    """Return an event's extra data as one readable line, keys in order.

    Without `duration` the values are kept as recorded (the CSV export, which spreadsheets and
    scripts read). With it, the line is for the audit pages: ISO times read as the pages show times
    ("2026-12-09 01:16 UTC") and `<name>_seconds` values as `<name>: duration(seconds)`.
    """
    if not extra:
        return ""
    return _pairs(extra, duration)
