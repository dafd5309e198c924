"""The inventory's usage columns and the attention filters that are not row flags.

- **Requests (30 d)**: every metered use of a credential (all outcomes) in its daily usage
  buckets (`credentials.usage`) of the last 30 UTC days, today included; a correlated
  subquery on the bucket table's unique index, so a page costs no extra query.
- **Sorting**: `?sort=` takes one of `SORTS` (anything else is refused by the form).
- **Attention filters** (`?attention=`): the row flags `unused`, `expiring`, `orphaned` and
  `review_overdue`, plus `pending` (a request waits for a decision on the credential: a new
  credential, a scope increase…) and `denials` (denials spiking, `spiking_refs`).

Nothing here names a credential kind: each kind's key and public id (`row_ref`) are what its
usage rows carry.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from credentials.governance.models import CredentialRequest, RequestState
from credentials.governance.registry import GovernedKind
from credentials.models import UsageBucket
from portal.models import Organization

USAGE_DAYS = 30
#: Denials spiking: denials (every outcome but `valid`) in the last 24 hours above
#: `SPIKE_FACTOR` times the daily average of the 7 days before, and at least `SPIKE_MINIMUM`.
SPIKE_FACTOR = 3
SPIKE_MINIMUM = 10
SPIKE_BASELINE_DAYS = 7

#: The attention filters (`?attention=`), in the order the overview's hub shows them.
ATTENTION = {
    "unused": "Unused for 30+ days",
    "expiring": "Expiring within 14 days",
    "orphaned": "Orphaned",
    "review_overdue": "Review overdue",
    "pending": "Pending approvals",
    "denials": "Denials spiking",
    # Working credentials the organisation's policy would no longer allow (flagged, never broken).
    "against_policy": "Against the credential policy",
}

#: `?sort=` values → the UNION's columns (ties: newest first). Absent: newest first.
SORTS = {
    "requests": ("row_requests_30d", "-row_created", "-id", "row_kind"),
    "-requests": ("-row_requests_30d", "-row_created", "-id", "row_kind"),
    "last_used": (F("row_last_used").asc(nulls_first=True), "-row_created", "-id", "row_kind"),
    "-last_used": (F("row_last_used").desc(nulls_last=True), "-row_created", "-id", "row_kind"),
}
SORT_LABELS = {
    "": "Newest first",
    "-requests": "Most requests (30 d)",
    "requests": "Fewest requests (30 d)",
    "-last_used": "Last used, recent first",
    "last_used": "Last used, oldest (or never) first",
}


def usage_window_start(now: datetime) -> datetime:
    """Return the start of the first daily bucket counted in "Requests (30 d)"."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=USAGE_DAYS - 1)


def requests_30d(kind: GovernedKind, now: datetime) -> Coalesce:
    """Return the expression of a row's requests in the last 30 days (0 without usage)."""
    total = (
        UsageBucket.objects.filter(
            kind=kind.key,
            credential_id=OuterRef("row_ref"),
            granularity="day",
            start__gte=usage_window_start(now),
        )
        .order_by()
        .values("credential_id")
        .annotate(total=Sum("count"))
        .values("total")
    )
    return Coalesce(Subquery(total, output_field=IntegerField()), Value(0))


def spiking_refs(organization: Organization | None, now: datetime) -> dict[str, set[str]]:
    """Return {kind key: public ids} of the credentials whose denials are spiking (one query).

    Read from the hourly buckets: the last 24 hours against the 7 days before them.
    """
    hour = now.replace(minute=0, second=0, microsecond=0)
    recent_from = hour - timedelta(hours=23)
    baseline_from = recent_from - timedelta(days=SPIKE_BASELINE_DAYS)
    buckets = UsageBucket.objects.filter(granularity="hour", start__gte=baseline_from).exclude(
        outcome="valid"
    )
    if organization is not None:
        buckets = buckets.filter(organization=organization)
    rows = (
        buckets.order_by()
        .values("kind", "credential_id")
        .annotate(
            recent=Coalesce(Sum("count", filter=Q(start__gte=recent_from)), 0),
            before=Coalesce(Sum("count", filter=Q(start__lt=recent_from)), 0),
        )
        .filter(recent__gte=SPIKE_MINIMUM)
    )
    spiking: dict[str, set[str]] = {}
    for row in rows:
        # recent > factor × (before / days), kept in integers
        if row["recent"] * SPIKE_BASELINE_DAYS > SPIKE_FACTOR * row["before"]:
            spiking.setdefault(row["kind"], set()).add(row["credential_id"])
    return spiking


def pending_q(kind: GovernedKind) -> Q:
    """Return the condition "a request waits for a decision on this row"."""
    waiting = CredentialRequest.objects.filter(kind=kind.key, state=RequestState.PENDING).values("object_id")
    return Q(pk__in=waiting)


def denials_q(kind: GovernedKind, spiking: dict[str, set[str]]) -> Q:
    """Return the condition "this row's denials are spiking" (from `spiking_refs`)."""
    return Q(row_ref__in=sorted(spiking.get(kind.key, ()))) if spiking.get(kind.key) else Q(pk__in=[])


def with_requests_30d(kind: GovernedKind, qs: QuerySet, now: datetime) -> QuerySet:
    """Annotate an inventory queryset with `row_requests_30d`."""
    return qs.annotate(row_requests_30d=requests_30d(kind, now))
