"""Reads every credential kind shares: the scope catalogue and the organisation's possible owners."""

from __future__ import annotations

from django.db.models import QuerySet

from credentials.models import Scope
from portal import authz
from portal.models import Organization, User


def scope_catalogue(*, for_role: str | None = None) -> QuerySet[Scope]:
    """Return the scopes a credential may hold, by name; with `for_role`, those such an owner may hold."""
    scopes = Scope.objects.order_by("name")
    if for_role is not None:
        scopes = scopes.exclude(
            name__in=[name for name in authz.PORTAL_SCOPES if not authz.scope_allowed(name, for_role)]
        )
    return scopes


def organization_members(organization: Organization) -> QuerySet[User]:
    """Return the users who belong to the organisation, by email (the possible key owners)."""
    return User.objects.filter(memberships__organization=organization).order_by("email")


def member_by_email(organization: Organization, email: str) -> User | None:
    """Return the organisation's member with this address, or None (another organisation's user too)."""
    return organization_members(organization).filter(email__iexact=email).first() if email else None


def owner_filter_id(organization: Organization, email: str) -> int | None:
    """Return the user id an `owner=<email>` list filter means: None for no filter, -1 for no such member."""
    if not email:
        return None
    member = member_by_email(organization, email)
    return member.pk if member is not None else -1
