"""URLs of the credentials app: API keys, webhooks, usage, governance and leak reports."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from credentials.usage_api import UsageView
from credentials.webhooks.api import WebhookEndpointViewSet

router = SimpleRouter()
router.register("webhooks", WebhookEndpointViewSet, basename="api-org-webhook")

urlpatterns = [
    path("", include("credentials.api_keys.urls")),
    path("orgs/<slug:org_slug>/webhooks/", include("credentials.webhooks.urls")),
    path("api/v1/orgs/<slug:org_slug>/", include(router.urls)),
    path("api/v1/orgs/<slug:org_slug>/usage/", UsageView.as_view(), name="api-org-usage"),
    path("", include("credentials.governance.urls")),
    path("", include("credentials.leaks.urls")),
]
