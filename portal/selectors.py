"""Reads for the portal room; every customer-facing query starts from an organisation."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import Lower
from django.http import Http404
from django.utils import timezone

from portal.models import AuditEvent, Invitation, Membership, Organization, User


def memberships_for_user(user: User) -> QuerySet[Membership]:
    """Return the user's memberships with their organisations, by organisation name ignoring letter
    case (then slug), each with `namesakes`: how many of them have that name (ignoring case).

    Names are not unique, slugs are: the switcher shows the slug beside a name the person sees more
    than once. The landing page's "first organisation" is the first of this order too.
    """
    if not user.is_authenticated:
        return Membership.objects.none()
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .annotate(namesakes=Window(Count("pk"), partition_by=[Lower("organization__name")]))
        .order_by(Lower("organization__name"), "organization__slug")
    )


def membership_for(user: User, org_slug: str) -> Membership:
    """Return the user's membership in the organisation `org_slug`, or raise Http404.

    In the same query, `in_other_organizations`: whether the user belongs to another organisation too
    (only then is there an organisation to choose between, and to remember: portal.tenancy).
    """
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__slug=org_slug)
        .annotate(
            in_other_organizations=Exists(
                Membership.objects.filter(user_id=OuterRef("user_id")).exclude(pk=OuterRef("pk"))
            )
        )
        .first()
        if user.is_authenticated
        else None
    )
    if membership is None:
        raise Http404("No such organisation.")
    return membership


def members_for(organization: Organization) -> QuerySet[Membership]:
    """Return the organisation's memberships with their users."""
    return Membership.objects.filter(organization=organization).select_related("user").order_by("user__email")


def invitations_for(organization: Organization) -> QuerySet[Invitation]:
    """Return the organisation's invitations, newest first."""
    return Invitation.objects.filter(organization=organization).select_related("invited_by")


def open_invitations_for(organization: Organization) -> QuerySet[Invitation]:
    """Return the organisation's invitations that can still be accepted."""
    return invitations_for(organization).filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


def audit_events_for(
    organization: Organization,
    *,
    action: str = "",
    actor_id: str | int | None = None,
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """Return the organisation's audit events, newest first, optionally filtered.

    `since` and `until` are days in UTC, both included.
    """
    events = AuditEvent.objects.filter(organization=organization).select_related("actor")
    if action:
        events = events.filter(action__startswith=action)
    if actor_id:
        events = events.filter(actor_id=actor_id)
    if since:
        events = events.filter(occurred_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    if until and until < date.max:  # the last day there is: no end to the range
        events = events.filter(
            occurred_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
        )
    return events.order_by("-occurred_at", "-id")


def audit_events_for_target(organization: Organization, target) -> QuerySet[AuditEvent]:
    """Return the organisation's audit events about one object, newest first."""
    return audit_events_for(organization).filter(
        target_type=target._meta.label_lower, target_id=str(target.pk)
    )


def authority_memberships() -> QuerySet[Membership]:
    """Return the memberships that lend a credential its owner's role: those of active accounts.

    A deactivated account (`is_active` off, Django's way of removing a user without deleting
    them) lends nothing, as if its owner had left: their credentials keep only the customer's
    API scopes (portal.authz), and the portal's own are stripped at once.
    """
    return Membership.objects.filter(user__is_active=True)


def role_of(user_id: int | None, organization_id: int) -> str | None:
    """Return the user's current role in the organisation, or None when they are not an (active) member."""
    if user_id is None:
        return None
    return (
        authority_memberships()
        .filter(user_id=user_id, organization_id=organization_id)
        .values_list("role", flat=True)
        .first()
    )


def owner_role_subquery(owner_field: str = "owner_id", organization_field: str = "organization_id"):
    """Return a subquery expression for a credential owner's current role (None once they left)."""
    return Subquery(
        authority_memberships()
        .filter(user_id=OuterRef(owner_field), organization_id=OuterRef(organization_field))
        .values("role")[:1]
    )


def audit_actors(organization: Organization) -> QuerySet[User]:
    """Return whom the audit log's actor filter offers: the organisation's members and everyone its
    events name as actor (one query).

    Someone who left (or was removed) keeps their events in the log, and finding what they did is
    the log's first use; another organisation's user who never acted here is not offered.
    """
    return User.objects.filter(
        Q(pk__in=Membership.objects.filter(organization=organization).values("user_id"))
        | Q(pk__in=AuditEvent.objects.filter(organization=organization).values("actor_id"))
    ).order_by("email")
