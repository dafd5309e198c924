"""Reading usage counts back in tests: a credential's minute (or hour, day) buckets by outcome."""

from __future__ import annotations

from credentials.models import UsageBucket


def outcome_counts(credential_id: str, granularity: str = "minute") -> dict[str, int]:
    """Return `{outcome: count}` summed over the credential's buckets of `granularity`."""
    result: dict[str, int] = {}
    for outcome, n in UsageBucket.objects.filter(
        credential_id=credential_id, granularity=granularity
    ).values_list("outcome", "count"):
        result[outcome] = result.get(outcome, 0) + n
    return result
