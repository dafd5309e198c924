"""What a credential's page shows of its use: the chart of a period, recent IPs and denials, unused scopes.

Shared by every kind (the governance panel includes it); the period comes from `?usage=`
(`24h`, `7d`, `90d`; anything else is the default). Four queries whatever the traffic.
"""

from __future__ import annotations

from django.http import HttpRequest

from credentials import usage
from credentials.governance.registry import kind_of
from credentials.insight.selectors import recent_denials, recent_ips, scope_suggestion

#: `?usage=` value → (hours shown, bucket granularity). Hourly buckets are kept 90 days, daily 400.
RANGES = {"24h": (24, "hour"), "7d": (7 * 24, "hour"), "90d": (90 * 24, "day")}
DEFAULT_RANGE = "24h"


def chosen_range(request: HttpRequest) -> str:
    """Return the period asked for by `?usage=`, or the default for a missing or unknown value."""
    value = request.GET.get("usage", DEFAULT_RANGE)
    return value if value in RANGES else DEFAULT_RANGE


def insight_context(request: HttpRequest, credential) -> dict:
    """Return the usage part of the governance panel's context for one credential."""
    usage.rollup_before_reading()
    kind = kind_of(credential)
    ident = {
        "organization_id": credential.organization_id,
        "kind": kind.key,
        "credential_id": getattr(credential, kind.ref_attr),
    }
    chosen = chosen_range(request)
    hours, granularity = RANGES[chosen]
    scopes = sorted(kind.scopes_of(credential))
    return {
        "gov_usage": usage.usage_summary(**ident, hours=hours, granularity=granularity),
        "gov_usage_range": chosen,
        "gov_usage_ranges": list(RANGES),
        "gov_ips": recent_ips(**ident),
        "gov_denials": recent_denials(**ident),
        "gov_scope_use": scope_suggestion(**ident, scopes=scopes) if scopes else None,
    }
