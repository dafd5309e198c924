"""Owners of credentials: who may own and manage them, orphaning when a member leaves, reassignment."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from credentials.governance.common import LIVE_STATUSES, audit_change, locked_credential, save_fields
from credentials.governance.models import CredentialStatus, SuspensionReason
from credentials.governance.registry import all_kinds, kind_of
from portal import authz
from portal.models import MANAGER_ROLES, Membership, Organization, User
from portal.selectors import role_of


def is_manager(user: User | None, organization: Organization) -> bool:
    """Return whether `user` owns or administers `organization`."""
    return bool(
        user is not None
        and user.is_authenticated
        and Membership.objects.filter(user=user, organization=organization, role__in=MANAGER_ROLES).exists()
    )


def may_manage(user: User | None, credential: models.Model, action: str) -> bool:
    """Return whether `user` may do `action` to `credential`: its owner, or an organisation owner or admin.

    Asked of `portal.authz` (the action's rule, for a person through their current membership),
    as the dashboard and REST views ask it, so services apply the same "owner or manager" rule.
    """
    if user is None or not user.is_authenticated:
        return False
    membership = Membership.objects.filter(user=user, organization_id=credential.organization_id).first()
    return authz.allowed(authz.person(user, membership), action, owner_id=credential.owner_id)


def lock_membership(organization_id: int, user_id: int | None) -> bool:
    """Lock a person's membership row until the transaction ends; return whether they are a member.

    A removal locks that row before it orphans the person's credentials (portal.services.
    organizations.membership_remove). A write that gives a credential this owner (a new
    credential, a successor, another owner) takes it before it locks any credential of theirs:
    the removal then waits and orphans what the write made, or the write sees the removal.
    """
    if user_id is None:
        return False
    member = Membership.objects.select_for_update(no_key=True).filter(
        organization_id=organization_id, user_id=user_id
    )
    return member.values_list("pk", flat=True).first() is not None


def lock_owner_before(credential: models.Model) -> int | None:
    """Lock the membership of `credential`'s owner before the caller locks the credential.

    The owner is the one of the instance passed in, the one its caller was authorised against
    (a member may act on their own credential only), not a fresh read: under the credential's
    lock the caller checks it with `check_owner_unchanged`, so an owner change that committed
    since the authorisation is refused, not acted on for the new owner. Return the owner's id.
    """
    lock_membership(credential.organization_id, credential.owner_id)
    return credential.owner_id


def check_owner_unchanged(credential: models.Model, owner_id: int | None) -> None:
    """Refuse to go on when the credential changed owner between `lock_owner_before` and its lock."""
    if credential.owner_id != owner_id:
        raise ValidationError("The credential changed owner meanwhile; try again.", code="conflict")


def check_owner_is_member(organization: Organization, user: User | None) -> None:
    """Check that a credential's (new) owner is a member of its organisation (both kinds), and
    hold their membership until the transaction ends (`lock_membership`)."""
    if user is None or not lock_membership(organization.pk, user.pk):
        raise ValidationError({"owner": "The owner must be a member of the organisation."}, code="owner")
    if not user.is_active:
        # A switched-off account can neither sign in nor answer for the credential: as if orphaned.
        raise ValidationError(
            {"owner": "This member's account is switched off; choose someone who can sign in."}, code="owner"
        )


def check_owner_may_hold(organization: Organization, owner: User | None, scopes: Iterable[str]) -> None:
    """Check that the credential's owner, in their current role, may hold these scopes (portal.authz).

    A member's credential may not carry a manager's scope: it would act beyond its owner.
    """
    role = role_of(owner.pk if owner is not None else None, organization.pk)
    beyond = authz.scopes_beyond_role([str(s) for s in scopes], role)
    if beyond:
        message = "Only owners and admins may hold these scopes, and the owner is not one: " + " ".join(
            beyond
        )
        raise ValidationError({"scopes": ValidationError(message, code="scope_beyond_owner")})


def managers_of(organization: Organization) -> list[User]:
    """Return the organisation's owners and admins."""
    return list(
        User.objects.filter(
            memberships__organization=organization, memberships__role__in=MANAGER_ROLES, is_active=True
        ).order_by("email")
    )


def notice_recipients(credential: models.Model, *, managers: list[str] | None = None) -> list[str]:
    """Return who is told about a credential: the organisation's managers, and its owner while
    they are a member (a former member's orphaned credential is no longer theirs to hear about).

    `managers` are the managers' addresses when the caller already has them (a batch of notices).
    """
    if managers is None:
        managers = [u.email for u in managers_of(credential.organization)]
    recipients = list(managers)
    if credential.owner_id and role_of(credential.owner_id, credential.organization_id) is not None:
        recipients.append(credential.owner.email)
    return recipients


def credentials_owned_by(organization: Organization, user: User) -> list[models.Model]:
    """Return the user's live credentials in the organisation, of every kind."""
    rows: list[models.Model] = []
    for kind in all_kinds():
        rows.extend(
            kind.model.objects.filter(
                organization=organization, owner=user, status__in=LIVE_STATUSES
            ).order_by("pk")
        )
    return rows


@transaction.atomic
def credentials_orphan(*, organization: Organization, user: User, actor: User | None) -> list[models.Model]:
    """Mark the departing member's credentials orphaned (they keep working until the grace ends).

    Called by `membership_remove` inside its transaction; one audit event per credential.
    """
    now = timezone.now()
    orphaned = []
    for credential in credentials_owned_by(organization, user):
        kind = kind_of(credential)
        credential = locked_credential(credential)
        if credential.orphaned_at is not None or credential.owner_id != user.pk:
            continue  # already orphaned, or given to someone else while this removal waited
        credential.orphaned_at = now
        save_fields(credential, kind, "orphaned_at")
        audit_change(kind, "orphaned", credential=credential, actor=actor, extra={"former_owner": user.email})
        orphaned.append(credential)
    return orphaned


#: Audit actions after which a member's credentials act with a different authority: a former
#: member who rejoins lends their keys the new role at once, as a demotion takes it away.
_AUTHORITY_CHANGES = frozenset(
    {"portal.membership.created", "portal.membership.role_changed", "portal.membership.removed"}
)


def on_membership_event(event, target) -> None:
    """Refresh the member's credentials when their role changes or they leave (an audit listener).

    A credential's authority is bounded by its owner's current role (portal.authz), and a
    verification snapshot caches that role: drop it now, so a demotion or removal takes effect
    on the very next request, on every server.
    """
    if event.action not in _AUTHORITY_CHANGES or not isinstance(target, Membership):
        return
    _refresh_credentials_of(organization_id=target.organization_id, owner_id=target.user_id)


def _refresh_credentials_of(**owner_filter: Any) -> None:
    """Drop the cached verification state of every credential the filter selects (every kind)."""
    for kind in all_kinds():
        for credential in kind.model.objects.filter(**owner_filter).select_related("organization", "owner"):
            kind.changed(credential)


#: The account fields a credential's cached verification state depends on: `is_active` decides
#: whether the owner lends a role (portal.selectors.authority_memberships); `email` is the owner
#: that `whoami` and `/api/v1/keys/verify` report.
_SNAPSHOT_FIELDS = ("is_active", "email")


def on_user_pre_save(sender, instance: User, update_fields=None, **kwargs: Any) -> None:
    """Note whether this save changes what the user's credentials cache (read by `on_user_saved`).

    One query, only for a save that may write one of `_SNAPSHOT_FIELDS` (the admin's form, an
    e-mail change; not a login's `last_login`).
    """
    instance._snapshot_changed = bool(
        instance.pk is not None
        and (update_fields is None or not set(update_fields).isdisjoint(_SNAPSHOT_FIELDS))
        and User.objects.filter(pk=instance.pk)
        .exclude(**{field: getattr(instance, field) for field in _SNAPSHOT_FIELDS})
        .exists()
    )


def on_user_saved(sender, instance: User, **kwargs: Any) -> None:
    """Refresh the user's credentials in every organisation once `on_user_pre_save` saw a change.

    A deactivated account lends its credentials no role (portal.selectors.authority_memberships);
    the snapshots that cache the role and the owner's address are dropped now, so the change
    takes effect on the very next request, on every server, as a removal does.
    """
    if getattr(instance, "_snapshot_changed", False):
        instance._snapshot_changed = False
        _refresh_credentials_of(owner_id=instance.pk)


def clear_orphan(credential) -> dict[str, Any]:
    """Clear the orphan mark of a credential that just got a new owner; restore an orphan suspension.

    Return what changed, for the caller's audit event. The caller saves the row.
    """
    changes: dict[str, Any] = {}
    if credential.orphaned_at is not None:
        credential.orphaned_at = None
        changes["orphan_cleared"] = True
    if (
        credential.status == CredentialStatus.SUSPENDED
        and credential.suspension_reason == SuspensionReason.ORPHANED
    ):
        credential.status = CredentialStatus.ACTIVE
        credential.suspended_at = None
        credential.suspension_reason = ""
        changes["restored"] = True
    return changes


@transaction.atomic
def credential_reassign_owner(
    *, credential: models.Model, owner: User, actor: User | None, via: str = ""
) -> models.Model:
    """Give the credential a new owner (a member); this clears an orphan and restores its suspension.

    Giving it the owner it already has changes nothing and records nothing (a resent form, as a
    REST PATCH naming the current owner), unless it is orphaned: its former owner, a member again,
    takes it back and the orphan mark is cleared.
    """
    kind = kind_of(credential)
    # Memberships before credentials (lock_membership): a removal holds the organisation's
    # owners' rows and waits for this credential.
    lock_membership(credential.organization_id, owner.pk)
    credential = locked_credential(credential)
    if credential.owner_id == owner.pk and credential.orphaned_at is None:
        return credential
    check_owner_is_member(credential.organization, owner)
    if credential.status not in LIVE_STATUSES:
        raise ValidationError(f"A {credential.status} credential cannot change owner.", code="inactive")
    # What its tokens carry: a trust has no scopes of its own but acts with its application's.
    check_owner_may_hold(
        credential.organization, owner, kind.scopes_for([credential.pk]).get(credential.pk, [])
    )
    previous = credential.owner.email if credential.owner_id else None
    credential.owner = owner
    changes = clear_orphan(credential)
    save_fields(credential, kind, "owner", "orphaned_at", "status", "suspended_at", "suspension_reason")
    extra = {"from": previous, "to": owner.email, **changes}
    audit_change(kind, "owner_reassigned", credential=credential, actor=actor, extra=extra, via=via)
    kind.changed(credential)
    return credential
