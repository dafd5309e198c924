"""URLs for API keys: dashboard pages, the management API and the central verification endpoint."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from credentials.api_keys import api, cutover_views, views
from credentials.api_keys.policy_api import ApiKeyPolicyView
from credentials.governance.urls import credential_patterns

router = SimpleRouter()
router.register("api-keys", api.ApiKeyViewSet, basename="api-org-api-key")

dashboard_patterns = [
    path("", views.api_key_list, name="org-api-keys"),
    path("new/", views.api_key_create_view, name="org-api-key-create"),
    path("<str:key_id>/", views.api_key_detail, name="org-api-key-detail"),
    path("<str:key_id>/rotate/", views.api_key_rotate_view, name="org-api-key-rotate"),
    path("<str:key_id>/revoke/", views.api_key_revoke_view, name="org-api-key-revoke"),
    path("<str:key_id>/edit/", views.api_key_edit_view, name="org-api-key-edit"),
    path("<str:key_id>/issue/", views.api_key_issue_view, name="org-api-key-issue"),
    path("<str:key_id>/cutover/", cutover_views.api_key_cutover_view, name="org-api-key-cutover"),
    path(
        "<str:key_id>/cutover/revoke/",
        cutover_views.api_key_cutover_revoke_view,
        name="org-api-key-cutover-revoke",
    ),
    *credential_patterns("api_key", "<str:key_id>", "org-api-key"),
]

urlpatterns = [
    path("orgs/<slug:org_slug>/api-keys/", include(dashboard_patterns)),
    path("api/v1/orgs/<slug:org_slug>/", include(router.urls)),
    path("api/v1/keys/verify", api.ApiKeyVerifyView.as_view(), name="api-keys-verify"),
    path(
        "api/v1/orgs/<slug:org_slug>/policy/api-keys/",
        ApiKeyPolicyView.as_view(),
        name="api-org-api-key-policy",
    ),
]
