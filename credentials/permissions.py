"""Who may manage an organisation's API keys over the REST API, and the scope check for machines."""

from __future__ import annotations

from django.http import Http404
from rest_framework.permissions import BasePermission

from portal.models import Organization
from portal.permissions import HasScopes
from portal.principal import Principal
from portal.selectors import membership_for

MANAGE_SCOPE = "api_keys:manage"
VERIFY_SCOPE = "api_keys:verify"

__all__ = ["HasScopes", "OrganizationApiKeyAccess", "MANAGE_SCOPE", "VERIFY_SCOPE"]


class OrganizationApiKeyAccess(BasePermission):
    """Allow a member of the URL's organisation, or a key of that organisation holding `api_keys:manage`.

    Another organisation answers 404, never 403. Sets `view.organization` and
    `view.membership` (None for a machine).
    """

    message = f"The credential lacks a required scope: {MANAGE_SCOPE}"

    def has_permission(self, request, view) -> bool:
        slug = view.kwargs.get("org_slug", "")
        principal = request.auth
        if isinstance(principal, Principal):
            if principal.organization_slug != slug:
                raise Http404("No such organisation.")
            organization = Organization.objects.filter(pk=principal.organization_id).first()
            if organization is None:
                raise Http404("No such organisation.")
            view.organization, view.membership = organization, None
            return principal.has_scopes(MANAGE_SCOPE)
        if not request.user or not request.user.is_authenticated:
            return False
        membership = membership_for(request.user, slug)
        view.organization, view.membership = membership.organization, membership
        return True
