"""Who may call an organisation's REST API: machines (API key, access token) and signed-in members."""

from __future__ import annotations

from rest_framework.authentication import SessionAuthentication

from portal.api.whoami import machine_authentication_classes
from portal.permissions import AuthorizedView, OrganizationAccess


class OrganizationApiView(AuthorizedView):
    """Mixin for an organisation's REST views: machine credentials or a session (with CSRF).

    OrganizationAccess finds the organisation of the URL (other organisations are 404) and sets
    `organization`; `authz_actions` still names each action's authority (AuthorizedView).
    """

    authentication_classes = [*machine_authentication_classes(), SessionAuthentication]
    permission_classes = [OrganizationAccess]
    organization = None
