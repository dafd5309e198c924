"""The one set of rotation overlaps offered for API keys, client secrets, public keys and webhook secrets."""

from __future__ import annotations

#: Hours the old secret keeps working after a rotation; 168 (7 days) is every service's maximum.
OVERLAP_HOURS = (0, 1, 24, 72, 168)
_LABELS = {1: "1 hour", 24: "24 hours (recommended)", 72: "3 days", 168: "7 days"}


def overlap_choices(old: str, *, extra: int | None = None) -> list[tuple[int, str]]:
    """Return the overlap choices, naming what stops (`old`: "key", "secret", …).

    `extra` adds an hour count the policy chose as its default (0–168) when it is not a preset.
    """
    hours = sorted({*OVERLAP_HOURS, *([extra] if extra is not None and 0 <= extra <= 168 else [])})
    return [(h, f"None — the old {old} stops now" if h == 0 else _LABELS.get(h, f"{h} hours")) for h in hours]
