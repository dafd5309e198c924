"""URLs of the tokens room: the OAuth protocol endpoints, the M2M dashboard pages and its REST API."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from credentials.governance.urls import credential_patterns
from tokens.clients import move_api
from tokens.clients import views as dashboard
from tokens.clients.api import M2MAppViewSet
from tokens.federation import views as federation
from tokens.protocol.views import introspect, jwks, metadata, revoke, token

router = SimpleRouter()
router.register("m2m-apps", M2MAppViewSet, basename="api-org-m2m-app")

org_patterns = [
    path("", dashboard.app_list, name="org-apps"),
    path("new/", dashboard.app_create, name="org-app-create"),
    path("<int:app_id>/", dashboard.app_detail, name="org-app-detail"),
    path("<int:app_id>/rotate-secret/", dashboard.app_secret_rotate, name="org-app-secret-rotate"),
    path(
        "<int:app_id>/secrets/<int:secret_id>/revoke/",
        dashboard.app_secret_revoke,
        name="org-app-secret-revoke",
    ),
    path("<int:app_id>/keys/add/", dashboard.app_key_add, name="org-app-key-add"),
    path(
        "<int:app_id>/keys/<int:public_key_id>/revoke/",
        dashboard.app_key_revoke,
        name="org-app-key-revoke",
    ),
    path("<int:app_id>/revoke/", dashboard.app_revoke, name="org-app-revoke"),
    path("<int:app_id>/token-quota/", dashboard.app_token_quota, name="org-app-token-quota"),
    path("<int:app_id>/edit/", dashboard.app_edit, name="org-app-edit"),
    path("<int:app_id>/issue-secret/", dashboard.app_issue_secret, name="org-app-issue-secret"),
    *credential_patterns("m2m_app", "<int:app_id>", "org-app"),
    # Federated identities (workload identity federation): added on an application's page.
    path("<int:app_id>/trusts/new/", federation.federated_create, name="org-federated-create"),
    path("federated/<int:identity_id>/", federation.federated_detail, name="org-federated-detail"),
    path("federated/<int:identity_id>/test/", federation.federated_test, name="org-federated-test"),
    path("federated/<int:identity_id>/remove/", federation.federated_revoke, name="org-federated-revoke"),
    path(
        "federated/<int:identity_id>/activate/", federation.federated_activate, name="org-federated-activate"
    ),
    *[
        pattern
        for pattern in credential_patterns("federated_id", "federated/<int:identity_id>", "org-federated")
        if pattern.name != "org-federated-scopes"  # a trust has its application's scopes
    ],
]

urlpatterns = [
    path("oauth/token", token.TokenView.as_view(), name="oauth-token"),
    path("oauth/introspect", introspect.IntrospectView.as_view(), name="oauth-introspect"),
    path("oauth/revoke", revoke.RevokeView.as_view(), name="oauth-revoke"),
    path(".well-known/jwks.json", jwks.jwks, name="oauth-jwks"),
    path(
        ".well-known/oauth-authorization-server",
        metadata.authorization_server_metadata,
        name="oauth-authorization-server-metadata",
    ),
    path("orgs/<slug:org_slug>/apps/", include(org_patterns)),
    path("api/v1/orgs/<slug:org_slug>/", include(router.urls)),
    # Under the API-keys resource, served from here: the move creates an M2M application, and
    # `credentials` (which serves the rest of that resource) never imports `tokens`.
    path("orgs/<slug:org_slug>/api-keys/<str:key_id>/move/", dashboard.api_key_move, name="org-api-key-move"),
    path(
        "api/v1/orgs/<slug:org_slug>/api-keys/<str:key_id>/move-to-m2m-app/",
        move_api.ApiKeyMoveView.as_view(),
        name="api-org-api-key-move",
    ),
]
