"""Audit events in words people read: "API key rotated" for `credentials.api_key.rotated`, and
extra data as "scopes: orders:read, orders:write; lifetime: from none to 30" instead of Python reprs."""

from __future__ import annotations

from typing import Any

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


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_value(item) for item in value) if value else "none"
    if isinstance(value, dict):
        if set(value) <= {"from", "to"}:
            return f"from {_value(value.get('from'))} to {_value(value.get('to'))}"
        return "; ".join(f"{_words(str(k))}: {_value(v)}" for k, v in sorted(value.items()))
    return str(value)


def details_text(extra: dict[str, Any] | None) -> str:
    """Return an event's extra data as one readable line, keys in order."""
    if not extra:
        return ""
    return "; ".join(f"{_words(str(key))}: {_value(value)}" for key, value in sorted(extra.items()))
