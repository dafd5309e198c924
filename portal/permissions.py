"""DRF permissions for machine principals."""

from __future__ import annotations

from django.http import Http404
from rest_framework.permissions import BasePermission

from portal.models import MANAGER_ROLES, Membership, Organization
from portal.principal import Principal
from portal.selectors import membership_for


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


class OrganizationAccess(BasePermission):
    """Resolve the URL's organisation for a member's session or for a credential of that organisation.

    Another organisation answers 404, never 403. Sets `view.organization` and
    `view.membership` (None for a machine); subclasses say what each may do.
    """

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
            return self.credential_allowed(principal)
        if not request.user or not request.user.is_authenticated:
            return False
        membership = membership_for(request.user, slug)
        view.organization, view.membership = membership.organization, membership
        return self.member_allowed(membership)

    def credential_allowed(self, principal: Principal) -> bool:
        """Return whether an API key or access token of the organisation may go on."""
        return False

    def member_allowed(self, membership: Membership) -> bool:
        """Return whether a signed-in member of the organisation may go on."""
        return True

    @staticmethod
    def owner_manages(principal: Principal) -> bool:
        """Return whether a credential's owner is still an owner or admin of its organisation.

        A key acts for its owner: a member cannot gain the managers' power by giving their
        own key a manager's scope, and a demoted owner's keys lose it at once.
        """
        return principal.owner_id is not None and (
            Membership.objects.filter(
                user_id=principal.owner_id, organization_id=principal.organization_id, role__in=MANAGER_ROLES
            ).exists()
        )
