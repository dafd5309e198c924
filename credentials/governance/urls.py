"""URLs of the governance pages: inventory (page, CSV, API), usage CSV, approvals and the policy."""

from __future__ import annotations

from django.urls import path

from credentials.governance import api, choice, views
from credentials.governance.policy_api import RuntimeRulesView
from credentials.governance.requests_api import CredentialRequestViewSet
from credentials.insight import views as insight_views


def credential_patterns(kind: str, prefix: str, url_name: str) -> list:
    """Return the per-credential governance URLs for one kind, under that kind's own detail URL."""
    return [
        path(f"{prefix}/recertify/", views.recertify, {"kind": kind}, name=f"{url_name}-recertify"),
        path(f"{prefix}/owner/", views.reassign, {"kind": kind}, name=f"{url_name}-reassign"),
        path(f"{prefix}/restore/", views.restore, {"kind": kind}, name=f"{url_name}-restore"),
        path(f"{prefix}/scopes/", views.request_scopes, {"kind": kind}, name=f"{url_name}-scopes"),
        path(f"{prefix}/policy/", views.runtime_policy, {"kind": kind}, name=f"{url_name}-policy"),
        path(
            f"{prefix}/scopes/narrow/",
            insight_views.narrow_to_used,
            {"kind": kind},
            name=f"{url_name}-narrow",
        ),
        path(
            f"{prefix}/usage.csv",
            insight_views.usage_csv_download,
            {"kind": kind},
            name=f"{url_name}-usage-csv",
        ),
    ]


urlpatterns = [
    path("orgs/<slug:org_slug>/credentials/new/", choice.credential_new, name="org-credential-new"),
    path("orgs/<slug:org_slug>/inventory/", views.inventory, name="org-inventory"),
    path("orgs/<slug:org_slug>/inventory/export.csv", views.inventory_csv, name="org-inventory-csv"),
    path("orgs/<slug:org_slug>/usage/export.csv", insight_views.organization_usage_csv, name="org-usage-csv"),
    path("orgs/<slug:org_slug>/approvals/", views.approvals, name="org-approvals"),
    path(
        "orgs/<slug:org_slug>/approvals/<int:request_id>/decide/",
        views.request_decide,
        name="org-request-decide",
    ),
    path(
        "orgs/<slug:org_slug>/approvals/<int:request_id>/cancel/",
        views.request_cancel,
        name="org-request-cancel",
    ),
    path(
        "orgs/<slug:org_slug>/approvals/<int:request_id>/revoke/",
        views.request_revoke,
        name="org-request-revoke",
    ),
    path("orgs/<slug:org_slug>/policy/", views.policy, name="org-policy"),
    path("api/v1/orgs/<slug:org_slug>/inventory/", api.InventoryView.as_view(), name="api-org-inventory"),
    path(
        "api/v1/orgs/<slug:org_slug>/policy/runtime/",
        RuntimeRulesView.as_view(),
        name="api-org-runtime-policy",
    ),
    path(
        "api/v1/orgs/<slug:org_slug>/requests/",
        CredentialRequestViewSet.as_view({"get": "list"}),
        name="api-org-request-list",
    ),
    path(
        "api/v1/orgs/<slug:org_slug>/requests/<int:request_id>/",
        CredentialRequestViewSet.as_view({"get": "retrieve"}),
        name="api-org-request-detail",
    ),
    *[
        path(
            f"api/v1/orgs/<slug:org_slug>/requests/<int:request_id>/{action}/",
            CredentialRequestViewSet.as_view({"post": action}),
            name=f"api-org-request-{action}",
        )
        for action in ("approve", "deny", "cancel")
    ],
]
