"""DRF permissions: resolve the organisation, then ask the authority table (portal.authz)."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Subquery
from django.http import Http404
from rest_framework.permissions import BasePermission

from portal import authz
from portal.models import Membership, Organization, User
from portal.principal import Principal
from portal.selectors import authority_memberships, membership_for
from portal.stepup import is_recently_authenticated


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
        self.code = "insufficient_scope"
        return False


class IsMachinePrincipal(BasePermission):
    """Allow only requests authenticated by an API key or an access token."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Principal)


def actor_for(request, membership: Membership | None) -> authz.Actor:
    """Return who acts in a REST request: the calling credential, or the signed-in person."""
    principal = request.auth
    if isinstance(principal, Principal):
        return authz.machine(principal)
    return authz.person(
        request.user, membership, recently_authenticated=is_recently_authenticated(request._request)
    )


class OrganizationAccess(BasePermission):
    """Resolve the URL's organisation for a member's session or for a credential of that organisation.

    Another organisation answers 404, never 403. Sets `view.organization`, `view.membership`
    (None for a machine) and `view.actor`, then asks `portal.authz` whether the actor may do
    the view's action at all (`AuthorizedView.authz_actions`); the view checks the target
    (whose credential, which scopes) with `view.authorize(...)`.
    """

    def has_permission(self, request, view) -> bool:
        slug = view.kwargs.get("org_slug", "")
        principal = request.auth
        if isinstance(principal, Principal):
            if principal.organization_slug != slug:
                raise Http404("No such organisation.")
            # The owner's role is read afresh with the organisation (one query): whatever a cached
            # snapshot says, a credential acts on the portal with its owner's role as it is now.
            organization = (
                Organization.objects.filter(pk=principal.organization_id)
                .annotate(
                    owner_role=Subquery(
                        authority_memberships()
                        .filter(user_id=principal.owner_id, organization_id=OuterRef("pk"))
                        .values("role")[:1]
                    )
                )
                .first()
            )
            if organization is None:
                raise Http404("No such organisation.")
            view.organization, view.membership = organization, None
            view.actor = authz.machine(principal, role=organization.owner_role)
        elif not request.user or not request.user.is_authenticated:
            return False
        else:
            membership = membership_for(request.user, slug)
            view.organization, view.membership = membership.organization, membership
            view.actor = actor_for(request, view.membership)
        action = view.authz_action()
        if action is None:
            return True  # DRF answers 405 next
        # Whether the actor may do this at all; "own" is assumed here and checked on the target.
        authz.authorize(view.actor, action, own=bool(authz.rule(action).own_roles))
        return True


class Authorized(BasePermission):
    """For views outside an organisation's URL (machine endpoints): ask portal.authz for the action."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, Principal):
            return False
        view.actor = actor_for(request, None)
        action = view.authz_action()
        if action is not None:
            authz.authorize(view.actor, action)
        return True


class AuthorizedView:
    """Mixin for REST views: name the authority action of each view action, and check targets.

    `authz_actions` maps a viewset action (`list`, `create`, `rotate`…) or, for plain views,
    an HTTP method (`get`, `post`…) to an action of `portal.authz.RULES`; HEAD takes GET's unless
    it names its own. The authority matrix test (tests/security/test_authority_matrix.py) fails
    for a view without an entry.
    """

    authz_actions: dict[str, str] = {}
    actor: authz.Actor | None = None

    def authz_action(self) -> str | None:
        """Return the authority action of this request; None where DRF answers 405 (or OPTIONS)."""
        method = self.request.method.lower()
        if hasattr(self, "action"):  # a viewset: None when no action serves this method
            key = self.action
        else:
            key = method if hasattr(self, method) and method != "options" else None
        if key in (None, "metadata") or method == "options":
            return None
        if key == "head" and key not in self.authz_actions:
            # HEAD is GET without a body (RFC 9110 §9.3.2): Django serves it with `get`, so it
            # asks what GET asks (a viewset's router maps it to the GET action already).
            key = "get"
        try:
            return self.authz_actions[key]
        except KeyError:
            raise LookupError(f"{type(self).__name__} names no authority action for {key!r}") from None

    def acting_user(self):
        """Return the person the request acts for: the signed-in user, or the credential's owner."""
        principal = self.request.auth
        if isinstance(principal, Principal):
            return User.objects.filter(pk=principal.owner_id).first() if principal.owner_id else None
        return self.request.user

    def acting_via(self) -> str:
        """Return how the request acts, for the audit: `api`, `api_key:<id>` or `m2m_app:<client id>`."""
        principal = self.request.auth
        if not isinstance(principal, Principal):
            return "api"
        if principal.credential_type == "access_token":
            return f"m2m_app:{principal.extra.get('client_id', '')}"
        return f"api_key:{principal.credential_id}"

    def authorize(self, action: str | None = None, **target: Any) -> None:
        """Raise `portal.authz.Refused` unless the actor may do the action to this target."""
        authz.authorize(self.actor, action or self.authz_action(), **target)

    def may(self, action: str, **target: Any) -> bool:
        """Return whether the actor may do the action to this target."""
        return authz.allowed(self.actor, action, **target)
