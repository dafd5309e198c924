"""The inventory's flags in words: one label per flag, from the selectors' own list."""

from __future__ import annotations

from django import template

from credentials.governance.selectors import FLAG_LABELS

register = template.Library()

#: Flags a row may carry that the inventory does not offer as a filter.
_OTHER_LABELS = {"leaked": "Leaked"}


@register.filter
def flag_label(flag: str) -> str:
    """Return a flag's label (`against_policy` → "Against the policy (still works)"); a flag
    nobody named yet shows as itself rather than as an empty badge."""
    return FLAG_LABELS.get(flag) or _OTHER_LABELS.get(flag) or flag.replace("_", " ").capitalize()
