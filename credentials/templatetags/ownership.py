"""Template helpers about who owns which credentials (members page: warn before a removal orphans some)."""

from __future__ import annotations

from django import template
from django.db.models import Count

from credentials.governance.common import LIVE_STATUSES
from credentials.governance.registry import all_kinds

register = template.Library()


@register.simple_tag
def owned_credential_counts(organization) -> dict[int, int]:
    """Return {user id: live credentials they own in `organization`}, every kind (one query per kind)."""
    counts: dict[int, int] = {}
    for kind in all_kinds():
        rows = (
            kind.model.objects.filter(organization=organization, status__in=LIVE_STATUSES)
            .values("owner_id")
            .annotate(n=Count("pk"))
        )
        for row in rows:
            counts[row["owner_id"]] = counts.get(row["owner_id"], 0) + row["n"]
    return counts


@register.filter
def count_for(counts: dict, user_id) -> int:
    """Return `counts[user_id]`, 0 when absent."""
    return (counts or {}).get(user_id, 0)
