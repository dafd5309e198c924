"""Who may manage an organisation's API keys over the REST API, and the scope check for machines."""

from __future__ import annotations

from portal.permissions import HasScopes, OrganizationAccess
from portal.principal import Principal

MANAGE_SCOPE = "api_keys:manage"
VERIFY_SCOPE = "api_keys:verify"

__all__ = ["HasScopes", "OrganizationApiKeyAccess", "MANAGE_SCOPE", "VERIFY_SCOPE"]


class OrganizationApiKeyAccess(OrganizationAccess):
    """Allow a member of the URL's organisation, or a key of that organisation holding `api_keys:manage`."""

    message = f"The credential lacks a required scope: {MANAGE_SCOPE}"

    def credential_allowed(self, principal: Principal) -> bool:
        return principal.has_scopes(MANAGE_SCOPE)
