"""The token issuance quota of an M2M application as the interfaces spell it (REST, forms, CLI).

`{"per_hour": N | null, "per_day": N | null, "mode": "enforce" | "log_only"}`: null is no quota
for that window; 0 or a negative number is refused (write null to switch a window off). An
hourly quota above the daily one is refused too: the daily quota would always bind first, so
the hourly number would only mislead. Enforcement: `tokens.protocol.quota`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.core.exceptions import ValidationError

from tokens.models import MAX_TOKEN_QUOTA, M2MApplication

#: JSON key -> model field.
FIELDS = {"per_hour": "tokens_per_hour", "per_day": "tokens_per_day", "mode": "token_quota_mode"}
MODES = tuple(M2MApplication.QuotaMode.values)
NO_QUOTA = {"per_hour": None, "per_day": None, "mode": M2MApplication.QuotaMode.ENFORCE.value}
#: How a refusal names the keys and "no quota" (REST and CLI); a form names its fields instead
#: (`TokenQuotaForm.clean`): each problem's params say which key it is about (`key`).
NAMES = {**{key: key for key in FIELDS}, "none": "null"}


def _refuse(message: str | list[str]):
    raise ValidationError({"token_quota": message}, code="token_quota")


def _problem(message: str, key: str) -> ValidationError:
    # The message names keys through params (%(per_hour)s, %(none)s), so the REST answer reads
    # "per_hour must be …" and a form's "Tokens per hour must be …".
    return ValidationError(message, params={**NAMES, "key": key})


def token_quota_of(application: M2MApplication) -> dict[str, Any]:
    """Return the application's quota in its JSON spelling."""
    return {key: getattr(application, field) for key, field in FIELDS.items()}


def clean_token_quota(value: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a complete, valid quota, or raise a `token_quota` field error.

    Keys left out keep their `current` value (none: no quota, enforce); `null` alone means no quota.
    """
    if value is None:
        return dict(NO_QUOTA)
    if not isinstance(value, dict) or not set(value) <= set(FIELDS):
        _refuse('Give {"per_hour": N or null, "per_day": N or null, "mode": "enforce" or "log_only"}.')
    quota = {**(current or NO_QUOTA), **value}
    errors = []
    for key in ("per_hour", "per_day"):
        number = quota[key]
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_TOKEN_QUOTA:
            bounds = f"a whole number from 1 to {MAX_TOKEN_QUOTA}"
            errors.append(_problem(f"%({key})s must be {bounds}, or %(none)s for no quota.", key))
    if quota["mode"] not in MODES:
        errors.append(_problem('%(mode)s must be "enforce" or "log_only".', "mode"))
    if not errors and quota["per_hour"] and quota["per_day"] and quota["per_hour"] > quota["per_day"]:
        errors.append(
            _problem(
                "%(per_hour)s may not be more than %(per_day)s (the daily quota would always bind first).",
                "per_hour",
            )
        )
    if errors:
        _refuse(errors)
    return quota


def parse_token_quota(per_hour: str, per_day: str, mode: str) -> dict[str, Any]:
    """Parse the form and CLI spelling (numbers as text, empty for none) into a quota."""
    numbers = {}
    for key, text in (("per_hour", per_hour), ("per_day", per_day)):
        text = (text or "").strip()
        if text and not re.fullmatch(r"-?\d{1,12}", text):
            _refuse([_problem(f"%({key})s must be a whole number, or empty for no quota.", key)])
        numbers[key] = int(text) if text else None
    return clean_token_quota({**numbers, "mode": mode or M2MApplication.QuotaMode.ENFORCE.value})


def set_token_quota(application: M2MApplication, quota: dict[str, Any]) -> None:
    """Copy a cleaned quota onto the application (not saved)."""
    for key, field in FIELDS.items():
        setattr(application, field, quota[key])


def quota_caps(quota: dict) -> tuple[float, float]:
    """Return the most tokens a quota lets an application get in one clock hour and in one UTC day.

    Infinity where nothing bounds it: no quota for either window, or log-only mode (tokens are
    issued past it). Each window bounds the other too: no hour gets more than the day allows,
    no day more than 24 full hours.
    """
    if quota["mode"] != M2MApplication.QuotaMode.ENFORCE:
        return math.inf, math.inf
    hour = quota["per_hour"] or math.inf
    day = quota["per_day"] or math.inf
    return min(hour, day), min(day, 24 * hour)


def quota_looser(quota: dict, than: dict) -> bool:
    """Return whether a token quota lets an application get more tokens in some hour or day than `than`:
    removed, a number raised or moved to the window where it allows more, or enforce -> log_only."""
    return any(mine > bound for mine, bound in zip(quota_caps(quota), quota_caps(than), strict=True))
