"""Periodic reviews and suspension: recertify, suspend, restore; sweep the overdue and orphaned ones."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from credentials.governance.common import audit_change, locked_credential, save_fields
from credentials.governance.models import (
    CredentialStatus,
    OrganizationPolicy,
    SuspensionReason,
)
from credentials.governance.org_policy import policy_for
from credentials.governance.ownership import may_manage
from credentials.governance.registry import (
    all_kinds,
    kind_of,
)
from portal.models import User

logger = logging.getLogger(__name__)


@transaction.atomic
def credential_recertify(
    *,
    credential: models.Model,
    actor: User,
    scopes: Iterable[str] | None = None,
    shown: Iterable[str] | None = None,
) -> models.Model:
    """Record the owner's review ("still needed; scopes still right"), optionally narrowing the scopes.

    `scopes` are those kept of the scopes the reviewer was `shown` (the review form as it was
    rendered): the review removes only the ones shown and not kept, from the scopes as they are
    under the lock, so a scope granted since the page was read (an approved increase, which the
    reviewer never saw) stays; the delta rule of `credential_request_approve`. Without `shown`,
    `scopes` is the whole new list, for a caller that read the scopes in this transaction.
    Schedules the next review; a credential suspended for an overdue review works again.
    """
    kind = kind_of(credential)
    credential = locked_credential(credential)
    if not may_manage(actor, credential, f"{kind.key}.recertify"):
        raise ValidationError("Only the owner or an organisation admin can review this.", code="not_owner")
    restorable = (
        credential.status == CredentialStatus.SUSPENDED
        and credential.suspension_reason == SuspensionReason.REVIEW_OVERDUE
    )
    if credential.status != CredentialStatus.ACTIVE and not restorable:
        raise ValidationError(f"A {credential.status} credential cannot be reviewed.", code="inactive")
    extra: dict[str, Any] = {}
    if scopes is not None:
        old = sorted(kind.scopes_of(credential))
        kept = set(scopes)
        seen = set(old) if shown is None else set(shown)
        if kept - seen:
            raise ValidationError({"scopes": "A review can only remove scopes; request an increase instead."})
        new = sorted(set(old) - (seen - kept))
        if new != old:
            kind.set_scopes(credential, new)
            extra["scopes"] = {"from": old, "to": new}
    now = timezone.now()
    credential.last_reviewed_at = now
    credential.last_reviewed_by = actor
    credential.review_due_at = now + policy_for(credential.organization).review_interval(kind.key)
    if restorable:
        credential.status = CredentialStatus.ACTIVE
        credential.suspended_at = None
        credential.suspension_reason = ""
        extra["restored"] = True
    save_fields(
        credential,
        kind,
        "last_reviewed_at",
        "last_reviewed_by",
        "review_due_at",
        "status",
        "suspended_at",
        "suspension_reason",
    )
    extra["next_review_due"] = credential.review_due_at.isoformat()
    audit_change(kind, "recertified", credential=credential, actor=actor, extra=extra)
    kind.changed(credential)
    return credential


@transaction.atomic
def credential_suspend(
    *,
    credential: models.Model,
    actor: User | None,
    reason: str,
    still_due: Callable[[models.Model], bool] | None = None,
) -> models.Model:
    """Suspend a working credential: it is refused exactly like a revoked one, but can be restored.

    `still_due(locked row)`, for a sweep that chose the credential from an earlier read: whether
    its reason still holds once the row is locked (a review or a new owner may have landed).
    """
    if reason not in SuspensionReason.values:
        raise ValidationError("Unknown suspension reason.")
    kind = kind_of(credential)
    credential = locked_credential(credential)
    if credential.status != CredentialStatus.ACTIVE:
        raise ValidationError(
            f"Only an active credential can be suspended (this one is {credential.status}).", code="inactive"
        )
    if still_due is not None and not still_due(credential):
        raise ValidationError("The reason to suspend it no longer holds.", code="no_longer_due")
    credential.status = CredentialStatus.SUSPENDED
    credential.suspended_at = timezone.now()
    credential.suspension_reason = reason
    save_fields(credential, kind, "status", "suspended_at", "suspension_reason")
    audit_change(kind, "suspended", credential=credential, actor=actor, extra={"reason": reason})
    kind.changed(credential)
    return credential


#: Suspensions an organisation's owners and admins may lift from the credential's page. Staff lift
#: any, in the admin: they made a `manual` one, and a `leaked` one's secret is public.
ORGANIZATION_RESTORABLE = frozenset({SuspensionReason.ORPHANED, SuspensionReason.REVIEW_OVERDUE})

#: Why an organisation cannot lift the other suspensions itself (the refusal's text, by reason).
_STAFF_ONLY_REASONS = {
    SuspensionReason.MANUAL: "The portal's staff suspended it: only they can restore it. Contact them.",
    SuspensionReason.LEAKED: (
        "Its secret was found in public: create a replacement and revoke this one, or ask the "
        "portal's staff to restore it (then rotate its secret at once, with no overlap)."
    ),
}


def restorable_by_organization(credential: models.Model) -> bool:
    """Return whether the credential is suspended for a reason its organisation's managers may lift."""
    return (
        credential.status == CredentialStatus.SUSPENDED
        and credential.suspension_reason in ORGANIZATION_RESTORABLE
    )


@transaction.atomic
def credential_restore(
    *, credential: models.Model, actor: User | None, as_staff: bool = False
) -> models.Model:
    """Lift a suspension; an orphan or review mark stays, its grace anew.

    Staff (`as_staff`: the admin's *restore* action, which needs its change permission) and the
    system (`actor` None: the portal's own code, never a request) lift any suspension. Anyone else,
    an `is_staff` account in the dashboard too, acts as what it is in the organisation: its owners
    and admins (`<kind>.restore`) lift an `orphaned` or `review_overdue` one only; a `manual` or
    `leaked` one is refused with code `staff_only`. Being staff is no licence outside the admin: a
    view-only support account that is also an organisation's admin may not re-activate a leaked key.
    """
    kind = kind_of(credential)
    credential = locked_credential(credential)
    staff = actor is None or as_staff
    if not staff and not may_manage(actor, credential, f"{kind.key}.restore"):
        raise ValidationError(
            "Only an organisation owner or admin, or the portal's staff, can restore this.",
            code="not_manager",
        )
    if credential.status != CredentialStatus.SUSPENDED:
        raise ValidationError(
            f"Only a suspended credential can be restored (this one is {credential.status}).",
            code="not_suspended",
        )
    reason = credential.suspension_reason
    if not staff and reason not in ORGANIZATION_RESTORABLE:
        raise ValidationError(
            _STAFF_ONLY_REASONS.get(reason, "Only the portal's staff can restore it."), code="staff_only"
        )
    credential.status = CredentialStatus.ACTIVE
    credential.suspended_at = None
    credential.suspension_reason = ""
    fields = ["status", "suspended_at", "suspension_reason"]
    # The marks stay (the owner is still gone, the review still due), but their grace starts again
    # now: else the next run of `credential_policies_apply` suspended it again within minutes.
    # Both marks, whatever the reason: a key whose owner left and that nobody reviewed was
    # suspended again at once for the other one.
    now = timezone.now()
    if credential.orphaned_at is not None:
        credential.orphaned_at = now
        fields.append("orphaned_at")
    if credential.review_due_at is not None and credential.review_due_at <= now:
        credential.review_due_at = now
        fields.append("review_due_at")
    save_fields(credential, kind, *fields)
    audit_change(kind, "restored", credential=credential, actor=actor, extra={"reason": reason})
    kind.changed(credential)
    return credential


def credential_revoke(*, credential: models.Model, actor: User | None, reason: str) -> models.Model:
    """Revoke through the kind's own service (one audit event there)."""
    return kind_of(credential).revoke(credential, actor, reason)


def credential_policies_apply(*, now: datetime | None = None) -> list[models.Model]:
    """Suspend credentials orphaned or overdue for longer than their organisation's grace.

    Safe to run at any frequency: a credential is suspended once, and each suspension is
    its own transaction with one audit event (actor: the system).
    """
    now = now or timezone.now()
    suspended = []
    policies: dict[int, OrganizationPolicy] = {}
    for kind in all_kinds():
        # Working credentials only: an expired one (an API key past its expiry, a rotated-away
        # predecessor, an application whose secrets all expired) is neither suspended nor told.
        candidates = (
            kind.inventory_queryset(None)
            .filter(status=CredentialStatus.ACTIVE, row_superseded=False)
            .filter(models.Q(row_expires__isnull=True) | models.Q(row_expires__gt=now))
            .filter(models.Q(orphaned_at__lte=now) | models.Q(review_due_at__lte=now))
            .select_related("organization")
            .order_by("pk")
        )
        for credential in candidates.iterator(chunk_size=500):
            org = credential.organization
            policy = policies.get(org.pk) or policies.setdefault(org.pk, policy_for(org))
            reason = _suspension_due(credential, policy, now)
            if reason is None:
                continue
            try:
                suspended.append(
                    credential_suspend(
                        credential=credential,
                        actor=None,
                        reason=reason,
                        still_due=lambda locked, reason=reason, policy=policy: (
                            _suspension_due(locked, policy, now) == reason
                        ),
                    )
                )
            except ValidationError:
                continue  # changed meanwhile (revoked, reassigned, reviewed)
    return suspended


def _suspension_due(credential: models.Model, policy: OrganizationPolicy, now) -> str | None:
    """Return why the sweep suspends the credential now (its orphan or overdue grace is over), or None."""
    if credential.orphaned_at and credential.orphaned_at + timedelta(days=policy.orphan_grace_days) <= now:
        return SuspensionReason.ORPHANED
    if (
        credential.review_due_at
        and credential.review_due_at + timedelta(days=policy.overdue_grace_days) <= now
    ):
        return SuspensionReason.REVIEW_OVERDUE
    return None
