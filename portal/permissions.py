"""DRF permissions for machine principals."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from portal.principal import Principal


class HasScopes(BasePermission):
    """Allow a machine principal holding every scope in the view's `required_scopes`.

    Missing scopes answer 403 (the credential is fine, it just may not do this).
    """

    message = "The credential lacks a required scope."

    def has_permission(self, request, view) -> bool:
        principal = request.auth
        if not isinstance(principal, Principal):
            return False
        required = getattr(view, "required_scopes", ())
        if principal.has_scopes(*required):
            return True
        self.message = "The credential lacks a required scope: " + " ".join(
            sorted(set(required) - principal.scopes)
        )
        return False


class IsMachinePrincipal(BasePermission):
    """Allow only requests authenticated by an API key or an access token."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Principal)
