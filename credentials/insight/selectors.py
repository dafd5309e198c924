"""Reads for usage: recent IPs, recent denials, scopes used, and usage series by outcome (one query each)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.utils import timezone

from credentials.governance.registry import all_kinds
from credentials.insight.models import UsageClientIp, UsageDenial, UsageScope
from credentials.insight.recorder import MAX_RECENT
from credentials.models import UsageBucket
from credentials.usage import OUTCOMES
from portal.models import Organization

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


# --- usage series (the usage API, its CSV, the dashboard download) -----------------------------


def credentials_by_ref(
    organization: Organization, refs: Iterable[str] | None = None
) -> dict[str, dict[str, str]]:
    """Return `{ref: {"kind": …, "name": …}}` for those of `refs` that are the organisation's credentials.

    A ref is a credential's public id (an API key's key id, an M2M application's client id);
    `refs=None` is every credential of the organisation, by kind and name. One query per kind,
    whatever the number of refs. Another organisation's ref is simply absent.
    """
    found: dict[str, dict[str, str]] = {}
    for kind in all_kinds():
        rows = kind.model.objects.filter(organization=organization)
        if refs is not None:
            rows = rows.filter(**{f"{kind.ref_attr}__in": list(refs)})
        for ref, name in rows.order_by("name", kind.ref_attr).values_list(kind.ref_attr, "name"):
            found[ref] = {"kind": kind.key, "name": name}
    return found


def usage_series(
    organization: Organization,
    credentials: dict[str, dict[str, str]] | None,
    *,
    granularity: str,
    since: datetime,
    until: datetime,
) -> list[dict]:
    """Return per credential its totals and its buckets by outcome; one query (+ one per kind for None).

    `credentials` is what `credentials_by_ref` returned, in the order wanted; None is every
    credential of the organisation with use in the range (by kind and name). Buckets whose start
    lies in `[since, until]` are returned, oldest first; a period with no use has no bucket.
    Every outcome of `credentials.usage.OUTCOMES` is present in each bucket and in the totals.
    """
    rows = UsageBucket.objects.filter(
        organization=organization, granularity=granularity, start__gte=since, start__lte=until
    )
    if credentials is not None:
        rows = rows.filter(credential_id__in=list(credentials))
    buckets: dict[str, dict[datetime, dict[str, int]]] = {}
    for kind, ref, start, outcome, count in rows.order_by("start").values_list(
        "kind", "credential_id", "start", "outcome", "count"
    ):
        if outcome in OUTCOMES:
            buckets.setdefault((kind, ref), {}).setdefault(start, dict.fromkeys(OUTCOMES, 0))[outcome] += (
                count
            )
    if credentials is None:
        # Only those with use: one query per kind for the names, never one per credential.
        credentials = {
            ref: about
            for ref, about in credentials_by_ref(organization).items()
            if (about["kind"], ref) in buckets
        }
    results = []
    for ref, about in credentials.items():
        periods = buckets.get((about["kind"], ref), {})
        totals = dict.fromkeys(OUTCOMES, 0)
        for counts in periods.values():
            for outcome, n in counts.items():
                totals[outcome] += n
        series = [{"start": start.isoformat(), **counts} for start, counts in periods.items()]
        results.append({"credential": ref, **about, "totals": totals, "buckets": series})
    return results
