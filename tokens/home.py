"""This app's card on the organisation home (registered with portal.home from TokensConfig.ready)."""

from __future__ import annotations

from django.db.models import Count, Q
from django.http import HttpRequest

from portal.home import HomePanel
from tokens.clients.selectors import m2m_apps_for


def _m2m_apps(request: HttpRequest) -> dict[str, dict[str, int]]:
    counts = m2m_apps_for(request.organization).aggregate(
        total=Count("pk", distinct=True),
        active=Count("pk", distinct=True, filter=Q(status="active")),
    )
    return {"m2m_app_counts": counts}


PANELS = [HomePanel("m2m_apps", "tokens/_home_card.html", _m2m_apps, order=20)]
