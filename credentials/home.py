"""This app's panels on the organisation home (registered with portal.home from CredentialsConfig.ready)."""

from __future__ import annotations

from django.http import HttpRequest

from credentials.api_keys.selectors import active_api_key_count
from credentials.governance.attention import attention_context
from credentials.governance.selectors import pending_requests_for
from credentials.webhooks.selectors import failing_webhook_endpoint_count
from portal.home import HomePanel


def _failing_webhooks(request: HttpRequest) -> dict[str, int]:
    manager = request.membership.is_manager
    return {"failing_webhooks": failing_webhook_endpoint_count(request.organization) if manager else 0}


def _pending_requests(request: HttpRequest) -> dict[str, int]:
    manager = request.membership.is_manager
    return {"pending_requests": pending_requests_for(request.organization).count() if manager else 0}


def _api_keys(request: HttpRequest) -> dict[str, int]:
    return {"active_api_keys": active_api_key_count(request.organization)}


PANELS = [
    HomePanel(
        "webhooks", "credentials/webhooks/_home_notice.html", _failing_webhooks, slot="notice", order=10
    ),
    HomePanel(
        "requests", "credentials/governance/_home_notice.html", _pending_requests, slot="notice", order=20
    ),
    # The "needs attention" hub: counts linking to the filtered inventory, a sparkline per kind.
    HomePanel(
        "attention", "credentials/governance/_attention.html", attention_context, slot="notice", order=30
    ),
    HomePanel("api_keys", "credentials/_home_card.html", _api_keys, order=10),
]
