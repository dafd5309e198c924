"""The "needs attention" hub of the organisation overview (a home panel, see credentials/home.py).

Each count is the number of inventory rows `?attention=<item>` shows, computed with the very
condition the inventory filters on (`selectors.attention_q`), so a count and its link agree.
The page costs a bounded number of queries whatever the number of credentials: one aggregate
per kind, one for denials spiking, one for the sparklines, one for failing webhooks.

Failing webhooks are endpoints, not credentials: that count links to the Webhooks page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from credentials import usage
from credentials.governance.inventory_usage import ATTENTION, USAGE_DAYS, spiking_refs, usage_window_start
from credentials.governance.registry import all_kinds
from credentials.governance.selectors import attention_q
from credentials.models import UsageBucket
from credentials.webhooks.selectors import failing_webhook_endpoint_count
from portal.models import Organization
from portal.tenancy import may

SPARK_WIDTH, SPARK_HEIGHT = 120, 24


@dataclass(frozen=True)
class AttentionItem:
    key: str
    label: str
    count: int
    url: str


def attention_counts(organization: Organization, *, now: datetime | None = None) -> dict[str, int]:
    """Return {attention item: number of inventory rows}, one aggregate query per kind (+1 for denials)."""
    now = now or timezone.now()
    spiking = spiking_refs(organization, now)
    counts = dict.fromkeys(ATTENTION, 0)
    for kind in all_kinds():
        totals = kind.inventory_queryset(organization).aggregate(
            **{item: Count("pk", filter=attention_q(kind, item, now, spiking)) for item in ATTENTION}
        )
        for item, n in totals.items():
            counts[item] += n
    return counts


def usage_sparklines(organization: Organization, *, now: datetime | None = None) -> list[dict]:
    """Return one sparkline per metered kind: daily requests over the last 30 days (one query)."""
    now = now or timezone.now()
    since = usage_window_start(now)
    kinds = [kind for kind in all_kinds() if kind.key in usage.KINDS]
    per_day: dict[tuple[str, datetime], int] = {}
    for kind_key, start, total in (
        UsageBucket.objects.filter(
            organization=organization, granularity="day", start__gte=since, kind__in=[k.key for k in kinds]
        )
        .order_by()
        .values_list("kind", "start")
        .annotate(total=Sum("count"))
    ):
        per_day[(kind_key, start)] = total
    days = [since + timedelta(days=i) for i in range(USAGE_DAYS)]
    lines = []
    for kind in kinds:
        values = [per_day.get((kind.key, day), 0) for day in days]
        lines.append(_sparkline(kind.label, values, days))
    return lines


def _sparkline(label: str, values: list[int], days: list[datetime]) -> dict:
    peak = max(values) or 1
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{SPARK_HEIGHT - 1 - (SPARK_HEIGHT - 2) * v / peak:.1f}" for i, v in enumerate(values)
    )
    total = sum(values)
    busiest = max(range(len(values)), key=lambda i: values[i])
    text = f"{label} usage: {total} request{'s' if total != 1 else ''} in the last {len(values)} days"
    if total:
        text += f", busiest day {days[busiest]:%d %b} with {values[busiest]}"
    return {"label": label, "total": total, "points": points, "text": text}


def attention_context(request: HttpRequest) -> dict:
    """The home panel's context: the hub's items (count and link) and a sparkline per kind."""
    if not may(request, "inventory.read"):
        return {"attention": None}
    organization = request.organization
    now = timezone.now()
    inventory = reverse("org-inventory", args=[organization.slug])
    counts = attention_counts(organization, now=now)
    items = [
        AttentionItem(key, label, counts[key], f"{inventory}?attention={key}")
        for key, label in ATTENTION.items()
    ]
    if may(request, "webhooks.manage"):
        items.append(
            AttentionItem(
                "failing_webhooks",
                "Failing webhooks",
                failing_webhook_endpoint_count(organization),
                reverse("org-webhooks", args=[organization.slug]),
            )
        )
    return {
        "attention": {
            "items": items,
            "total": sum(item.count for item in items),
            "sparklines": usage_sparklines(organization, now=now),
            "width": SPARK_WIDTH,
            "height": SPARK_HEIGHT,
        }
    }
