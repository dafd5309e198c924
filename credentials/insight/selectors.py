"""Reads for a credential's usage insight: recent IPs, recent denials, scopes used (one query each)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from credentials.insight.models import UsageClientIp, UsageDenial, UsageScope
from credentials.insight.recorder import MAX_RECENT

#: Scopes not needed by any request for this long are offered for removal.
UNUSED_AFTER = timedelta(days=30)


def _of(model, *, organization_id: int, kind: str, credential_id: str):
    return model.objects.filter(organization_id=organization_id, kind=kind, credential_id=credential_id)


def recent_ips(*, organization_id: int, kind: str, credential_id: str) -> list[UsageClientIp]:
    """Return the credential's most recent client IPs, last seen first."""
    rows = _of(UsageClientIp, organization_id=organization_id, kind=kind, credential_id=credential_id)
    return list(rows.order_by("-last_seen", "-pk")[:MAX_RECENT])


def recent_denials(*, organization_id: int, kind: str, credential_id: str) -> list[UsageDenial]:
    """Return the credential's most recent refused uses, newest first."""
    rows = _of(UsageDenial, organization_id=organization_id, kind=kind, credential_id=credential_id)
    return list(rows.order_by("-at", "-pk")[:MAX_RECENT])


def scopes_used_since(
    *, organization_id: int, kind: str, credential_id: str, since: datetime
) -> dict[str, datetime]:
    """Return `{scope: last used}` for the credential's scopes needed by a request since `since`."""
    rows = _of(UsageScope, organization_id=organization_id, kind=kind, credential_id=credential_id)
    return dict(rows.filter(last_used__gte=since).values_list("scope", "last_used"))


def scope_suggestion(*, organization_id: int, kind: str, credential_id: str, scopes: list[str]) -> dict:
    """Return which of `scopes` were used in the last 30 days and which were not (one query)."""
    used = scopes_used_since(
        organization_id=organization_id,
        kind=kind,
        credential_id=credential_id,
        since=timezone.now() - UNUSED_AFTER,
    )
    return {
        "used": [{"scope": s, "last_used": used[s]} for s in scopes if s in used],
        "unused": [s for s in scopes if s not in used],
        "days": UNUSED_AFTER.days,
    }
