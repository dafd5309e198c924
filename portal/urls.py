"""Root URL configuration."""

from __future__ import annotations

from allauth.account.decorators import secure_admin_login
from allauth.account.views import LogoutView
from django.contrib import admin
from django.urls import include, path
from django.views.decorators.cache import never_cache
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.api.whoami import WhoAmIView
from portal.infra import metrics
from portal.views import account, assets, audit_export, dashboard, health, invitations

# The admin signs in through the portal's login, second factor included, never its own form.
admin.site.login = secure_admin_login(admin.site.login)

org_patterns = [
    path("", dashboard.org_home, name="org-home"),
    path("members/", dashboard.members, name="org-members"),
    path("members/invite/", dashboard.invitation_create, name="org-invite"),
    path("members/<int:member_id>/role/", dashboard.member_role, name="org-member-role"),
    path("members/<int:member_id>/remove/", dashboard.member_remove, name="org-member-remove"),
    path(
        "invitations/<int:invitation_id>/revoke/", dashboard.invitation_revoke, name="org-invitation-revoke"
    ),
    path(
        "invitations/<int:invitation_id>/resend/",
        invitations.invitation_resend,
        name="org-invitation-resend",
    ),
    path("audit/", dashboard.audit_log_page, name="org-audit"),
    path("audit/export.csv", audit_export.audit_log_export, name="org-audit-export"),
    path("security/", account.org_security, name="org-security"),
]

urlpatterns = [
    # First: services call it on every request, and an exact path matched by no other pattern
    # answers the same wherever it stands; here the resolver tries 1 pattern instead of ~45.
    path("api/v1/whoami", WhoAmIView.as_view(), name="api-whoami"),
    path("", dashboard.dashboard, name="dashboard"),
    # Browsers ask for /favicon.ico whatever the page says; send them to the real icon.
    path("favicon.ico", assets.favicon, name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("accounts/login/", account.PortalLoginView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("accounts/sessions/", account.sessions, name="usersessions_list"),
    path("accounts/email/", account.email_addresses, name="account_email"),
    # Before allauth's own: changing the password asks for step-up first.
    path("accounts/password/change/", account.password_change, name="account_change_password"),
    # The page shows the authenticator's secret: no cache, the back button included, may keep it;
    # the code typed to confirm the set-up is spent (it cannot sign in again).
    path("accounts/2fa/totp/activate/", never_cache(account.totp_activate), name="mfa_activate_totp"),
    path("accounts/", include("allauth.urls")),
    path("invitations/<str:token>/", dashboard.invitation_accept, name="invitation-accept"),
    path("orgs/<slug:org_slug>/", include(org_patterns)),
    path("", include("credentials.urls")),
    path("", include("tokens.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler400 = "portal.infra.faults.bad_request"
handler404 = "portal.infra.faults.not_found"
handler500 = "portal.infra.faults.server_error"

admin.site.site_header = "Identity Portal administration"
admin.site.site_title = "Identity Portal admin"
admin.site.index_title = "Organisations, credentials and audit"
