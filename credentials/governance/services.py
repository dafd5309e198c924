"""Governance writes for every credential kind: requests and approvals, ownership, reviews, suspension.

Each service takes keyword-only arguments, runs in one transaction, locks the rows it
changes (select_for_update) and writes exactly one audit event with the actor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from credentials import lifetimes, policy
from credentials.governance.models import (
    CredentialRequest,
    CredentialStatus,
    NewApiKeys,
    Notice,
    OrganizationPolicy,
    RequestState,
    RequestType,
    SuspensionReason,
)
from credentials.governance.registry import GovernedKind, all_kinds, credential_path, get_kind, kind_of
from portal import authz
from portal.models import MANAGER_ROLES, Membership, Organization, User
from portal.selectors import role_of
from portal.services.audit import audit_log

logger = logging.getLogger(__name__)

#: Statuses in which a credential still belongs to someone (orphaning and reassignment apply).
LIVE_STATUSES = (CredentialStatus.PENDING, CredentialStatus.ACTIVE, CredentialStatus.SUSPENDED)


# --- policy ---------------------------------------------------------------------------------


def policy_for(organization: Organization) -> OrganizationPolicy:
    """Return the organisation's policy, creating it with the defaults on first use."""
    try:
        return organization.credential_policy
    except OrganizationPolicy.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            policy = OrganizationPolicy.objects.create(organization=organization)
    except IntegrityError:
        policy = OrganizationPolicy.objects.get(organization=organization)
    organization.credential_policy = policy
    return policy


POLICY_FIELDS = (
    "approve_new_api_keys",
    "approve_new_m2m_apps",
    "approve_scope_increases",
    "api_key_max_lifetime_days",
    "client_secret_max_lifetime_days",
    "default_rotation_overlap_hours",
    "api_key_review_interval_days",
    "m2m_app_review_interval_days",
    "orphan_grace_days",
    "overdue_grace_days",
    "leaked_credential_action",
    "new_live_api_keys",
    "new_live_api_keys_max_days",
    "new_test_api_keys",
    "new_test_api_keys_max_days",
)
#: The settings of the policy on kinds: changing one re-flags existing credentials.
KIND_POLICY_FIELDS = POLICY_FIELDS[-4:]


@transaction.atomic
def policy_update(*, organization: Organization, actor: User | None, **values: Any) -> OrganizationPolicy:
    """Change the organisation's policy; the audit event lists each change."""
    policy = policy_for(organization)
    policy = OrganizationPolicy.objects.select_for_update().get(pk=policy.pk)
    changes = {}
    for name, value in values.items():
        if name not in POLICY_FIELDS:
            raise ValidationError(f"Unknown policy setting {name!r}.")
        if getattr(policy, name) != value:
            changes[name] = {"from": getattr(policy, name), "to": value}
            setattr(policy, name, value)
    if not changes:
        return policy
    policy.full_clean()
    policy.save()
    audit_log(
        action="credentials.policy.updated",
        actor=actor,
        organization=organization,
        target=policy,
        target_label=f"Credential policy of {organization.slug}",
        extra=changes,
    )
    organization.credential_policy = policy
    if changes.keys() & set(KIND_POLICY_FIELDS):
        _flag_against_policy(policy, actor)
    return policy


def _flag_against_policy(policy: OrganizationPolicy, actor: User | None) -> int:
    """Flag the working credentials the policy would not allow today; tell their owners once.

    Nothing is revoked or suspended: an existing integration keeps working. A credential the
    policy allows again loses its flag. Return how many credentials are newly flagged.
    """
    now = timezone.now()
    settings_now = {name: getattr(policy, name) for name in KIND_POLICY_FIELDS}
    period = "kind-policy:" + ":".join(str(value or "") for value in settings_now.values())
    flagged = 0
    for kind in all_kinds():
        if kind.policy_violations is None:
            continue
        violating = kind.policy_violations(policy)
        kind.model.objects.filter(organization=policy.organization, policy_flagged_at__isnull=False).exclude(
            pk__in=violating.values("pk")
        ).update(policy_flagged_at=None)
        for credential in violating.select_related("organization", "owner"):
            if credential.policy_flagged_at is not None:
                continue  # flagged (and its owner told) by an earlier change
            credential.policy_flagged_at = now
            _save(credential, kind, "policy_flagged_at")
            _audit(kind, "policy_flagged", credential=credential, actor=actor, extra={"policy": settings_now})
            notice_send_once(
                credential=credential,
                notice_type="against_policy",
                period=period,
                recipients=[credential.owner.email] if credential.owner_id else [],
                context={"policy": policy},
            )
            flagged += 1
    return flagged


def _locked_policy(organization: Organization) -> OrganizationPolicy:
    """Return the policy row locked until the end of the transaction.

    A key creation and a policy change serialise on it: a creation either commits before the
    change (and is then flagged by it) or waits and is judged by the new policy.
    """
    # Read afresh, never from the organisation's cached policy (it may come from another transaction).
    locked = OrganizationPolicy.objects.select_for_update().filter(organization_id=organization.pk).first()
    if locked is None:
        try:
            with transaction.atomic():
                OrganizationPolicy.objects.create(organization=organization)
        except IntegrityError:
            pass  # a concurrent first use created it
        locked = OrganizationPolicy.objects.select_for_update().get(organization_id=organization.pk)
    organization.credential_policy = locked
    return locked


def check_new_api_key(
    organization: Organization, environment: str, expires_at: datetime | None
) -> datetime | None:
    """Apply the policy on kinds to a new API key: refuse it, or return its (possibly filled-in) expiry.

    Must run inside the creating transaction: it locks the policy row. Where keys need an expiry
    of at most N days, a key without one expires in N days; a longer one is refused.
    """
    policy = _locked_policy(organization)
    rule, days = policy.new_api_keys(environment)
    label = "Live" if environment == "live" else "Test"
    if rule == NewApiKeys.FORBIDDEN:
        raise ValidationError(
            f"{label} API keys are not allowed by your organisation's credential policy: create an M2M "
            "application instead.",
            code="api_keys_not_allowed",
        )
    if rule == NewApiKeys.EXPIRING and days:
        latest = lifetimes.expiry_in_days(days)
        if expires_at is None:
            return latest
        if expires_at > lifetimes.add_clamped(latest, lifetimes.GRACE):
            raise ValidationError(
                {
                    "expires_at": ValidationError(
                        f"Your organisation's credential policy allows {environment} API keys only with "
                        f"an expiry of at most {days} days.",
                        code="api_key_expiry_too_long",
                    )
                }
            )
    return expires_at


def review_due_from(organization: Organization, kind: str, *, now: datetime | None = None) -> datetime:
    """Return when a credential of `kind` created or reviewed now is next due for review."""
    return (now or timezone.now()) + policy_for(organization).review_interval(kind)


def max_lifetime_days(organization: Organization, kind: str) -> int:
    """Return the longest lifetime in days a credential of `kind` may get: the policy's, at most ten years."""
    policy = policy_for(organization)
    days = policy.api_key_max_lifetime_days if kind == "api_key" else policy.client_secret_max_lifetime_days
    return min(days or lifetimes.MAX_LIFETIME_DAYS, lifetimes.MAX_LIFETIME_DAYS)


def check_lifetime(organization: Organization, kind: str, expires_at: datetime | None) -> datetime | None:
    """Apply the policy's maximum lifetime: fill in a missing expiry, refuse a longer one.

    Without a policy maximum a missing expiry stays missing, but no expiry may lie more than
    ten years ahead (`credentials.lifetimes`).
    """
    policy = policy_for(organization)
    days = policy.api_key_max_lifetime_days if kind == "api_key" else policy.client_secret_max_lifetime_days
    now = timezone.now()
    if not days:
        if expires_at is not None:
            lifetimes.check_expiry(expires_at, now=now)
        return expires_at
    latest = lifetimes.expiry_in_days(min(days, lifetimes.MAX_LIFETIME_DAYS), now=now)
    if expires_at is None:
        return latest
    if expires_at > lifetimes.add_clamped(latest, lifetimes.GRACE):
        raise ValidationError(
            {"expires_at": f"Your organisation allows at most {days} days."}, code="max_lifetime"
        )
    return expires_at


def approval_required(organization: Organization, kind: str) -> bool:
    """Return whether a new credential of `kind` must be approved first."""
    return policy_for(organization).requires_approval_for(kind)


def scope_increase_needs_approval(organization: Organization, old: Iterable[str], new: Iterable[str]) -> bool:
    """Return whether going from `old` to `new` scopes widens them under a policy requiring approval."""
    return bool(set(new) - set(old)) and policy_for(organization).approve_scope_increases


# --- helpers --------------------------------------------------------------------------------


def _audit(kind: GovernedKind, verb: str, *, credential, actor, extra: dict | None = None) -> None:
    audit_log(
        action=f"{kind.audit_prefix}.{verb}",
        actor=actor,
        organization=credential.organization,
        target=credential,
        extra=extra,
    )


def _locked(credential: models.Model) -> models.Model:
    kind = kind_of(credential)
    return (
        kind.model.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=credential.pk)
    )


def _save(credential, kind: GovernedKind, *fields: str) -> None:
    credential.save(update_fields=[*fields, kind.touch_field])


def is_manager(user: User | None, organization: Organization) -> bool:
    """Return whether `user` owns or administers `organization`."""
    return bool(
        user is not None
        and user.is_authenticated
        and Membership.objects.filter(user=user, organization=organization, role__in=MANAGER_ROLES).exists()
    )


def check_owner_is_member(organization: Organization, user: User | None) -> None:
    """Check that a credential's (new) owner is a member of its organisation (both kinds)."""
    if user is None or not Membership.objects.filter(organization=organization, user=user).exists():
        raise ValidationError({"owner": "The owner must be a member of the organisation."}, code="owner")


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


# --- requests and approvals -----------------------------------------------------------------


@transaction.atomic
def credential_request_create(
    *,
    credential: models.Model,
    requester: User,
    request_type: str,
    justification: str,
    requested_scopes: Iterable[str] = (),
    lifetime_days: int | None = None,
) -> CredentialRequest:
    """Ask the organisation's approvers to create a pending credential or widen its scopes.

    For a scope increase the credential keeps its current scopes until the approval.
    """
    kind = kind_of(credential)
    justification = (justification or "").strip()
    if not justification:
        raise ValidationError({"justification": "Say why this is needed."}, code="justification")
    if request_type not in RequestType.values:
        raise ValidationError("Unknown request type.")
    credential = _locked(credential)
    scopes = sorted(set(requested_scopes))
    previous = sorted(kind.scopes_of(credential)) if request_type == RequestType.SCOPE_INCREASE else []
    if request_type == RequestType.SCOPE_INCREASE:
        if credential.owner_id != requester.pk and not is_manager(requester, credential.organization):
            raise ValidationError(
                "Only the owner or an organisation admin can ask for more scopes.", code="not_owner"
            )
        if credential.status != CredentialStatus.ACTIVE:
            raise ValidationError("Only an active credential can get more scopes.", code="inactive")
        if not set(scopes) - set(previous):
            raise ValidationError(
                {"scopes": "Choose at least one scope it does not have yet."}, code="no_increase"
            )
        check_owner_may_hold(credential.organization, credential.owner, set(scopes) - set(previous))
    elif credential.status != CredentialStatus.PENDING:
        raise ValidationError("Only a pending credential can be requested.", code="not_pending")
    try:
        with transaction.atomic():
            request = CredentialRequest.objects.create(
                organization=credential.organization,
                kind=kind.key,
                object_id=credential.pk,
                credential_label=str(credential)[:255],
                request_type=request_type,
                requested_scopes=scopes,
                previous_scopes=previous,
                lifetime_days=lifetime_days,
                justification=justification[:2000],
                requester=requester,
            )
    except IntegrityError:
        raise ValidationError("A request for this credential is already waiting.", code="pending") from None
    audit_log(
        action="credentials.request.created",
        actor=requester,
        organization=credential.organization,
        target=credential,
        extra={
            "request_id": request.pk,
            "type": request_type,
            "scopes": scopes,
            "previous_scopes": previous,
            "lifetime_days": lifetime_days,
        },
    )
    notice_send_once(
        credential=credential,
        notice_type="approval_requested",
        period=f"request-{request.pk}",
        recipients=[u.email for u in managers_of(credential.organization) if u.pk != requester.pk],
        context={"request": request},
    )
    return request


def _lock_request(request: CredentialRequest) -> CredentialRequest:
    return (
        CredentialRequest.objects.select_for_update(of=("self",))
        .select_related("organization", "requester")
        .get(pk=request.pk)
    )


def _check_approver(request: CredentialRequest, actor: User, linked_ids: Iterable[int] = ()) -> None:
    if request.state != RequestState.PENDING:
        raise ValidationError(f"This request was already {request.state}.", code="decided")
    if actor is None or not actor.is_authenticated:
        raise ValidationError("Sign in to decide on requests.", code="anonymous")
    if request.requester_id == actor.pk:
        # Four eyes: a requester, however privileged, never approves their own request.
        raise ValidationError("You cannot decide on your own request.", code="own_request")
    try:
        # ...nor through a credential they own, created or issued the secret of.
        authz.check_four_eyes(requester_id=request.requester_id, decider_id=actor.pk, linked_ids=linked_ids)
    except authz.Refused as exc:
        raise ValidationError(exc.detail, code=exc.code) from None
    if not (actor.is_staff or is_manager(actor, request.organization)):
        raise ValidationError("Only owners and admins of the organisation can decide.", code="not_approver")


def people_behind(principal) -> set[int]:
    """Return the people behind a deciding credential: owner, creator, issuers of its live secrets.

    Asked of every kind (`GovernedKind.people_behind`), so governance names none of them.
    """
    people: set[int] = set()
    for kind in all_kinds():
        people |= kind.people_behind(principal)
    people.discard(None)
    return people


def credential_for_request(request: CredentialRequest) -> models.Model:
    """Return the credential a request is about."""
    return (
        get_kind(request.kind).model.objects.select_related("organization", "owner").get(pk=request.object_id)
    )


@transaction.atomic
def credential_request_approve(
    *, request: CredentialRequest, actor: User, comment: str = "", linked_ids: Iterable[int] = ()
) -> CredentialRequest:
    """Approve a request: a new credential may now get its secret; a scope increase takes effect."""
    request = _lock_request(request)
    _check_approver(request, actor, linked_ids)
    kind = get_kind(request.kind)
    credential = _locked(credential_for_request(request))
    if request.request_type == RequestType.CREATE:
        # The policy on kinds may have changed since the request was made.
        kind.check_new(credential, request.lifetime_days)
    if request.request_type == RequestType.SCOPE_INCREASE:
        if credential.status != CredentialStatus.ACTIVE:
            raise ValidationError("The credential is no longer active.", code="inactive")
        check_owner_may_hold(
            credential.organization,
            credential.owner,
            set(request.requested_scopes) - set(kind.scopes_of(credential)),
        )
        kind.set_scopes(credential, request.requested_scopes)
        kind.changed(credential)
    return _record_decision(request, credential, actor=actor, comment=comment, state=RequestState.APPROVED)


@transaction.atomic
def credential_request_deny(
    *, request: CredentialRequest, actor: User, comment: str = "", linked_ids: Iterable[int] = ()
) -> CredentialRequest:
    """Deny a request: a new credential is marked denied (it never gets a secret); scopes stay as they are."""
    request = _lock_request(request)
    _check_approver(request, actor, linked_ids)
    kind = get_kind(request.kind)
    credential = _locked(credential_for_request(request))
    if request.request_type == RequestType.CREATE and credential.status == CredentialStatus.PENDING:
        credential.status = CredentialStatus.DENIED
        _save(credential, kind, "status")
    return _record_decision(request, credential, actor=actor, comment=comment, state=RequestState.DENIED)


@transaction.atomic
def credential_request_cancel(*, request: CredentialRequest, actor: User) -> CredentialRequest:
    """Withdraw your own waiting request.

    A new credential is closed without ever getting a secret (status `denied`, the state a
    refused request leaves; the request itself says `cancelled`); a scope increase simply
    lapses. Only the requester may cancel, and only while nobody has decided.
    """
    request = _lock_request(request)
    if request.state != RequestState.PENDING:
        raise ValidationError(f"This request was already {request.state}.", code="decided")
    if actor is None or not actor.is_authenticated or request.requester_id != actor.pk:
        raise ValidationError("Only the person who made a request can cancel it.", code="not_requester")
    kind = get_kind(request.kind)
    credential = _locked(credential_for_request(request))
    if request.request_type == RequestType.CREATE and credential.status == CredentialStatus.PENDING:
        credential.status = CredentialStatus.DENIED
        _save(credential, kind, "status")
    request.state = RequestState.CANCELLED
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decided_by", "decided_at", "updated_at"])
    audit_log(
        action="credentials.request.cancelled",
        actor=actor,
        organization=request.organization,
        target=credential,
        extra={"request_id": request.pk, "type": request.request_type},
    )
    return request


def _record_decision(
    request: CredentialRequest, credential, *, actor: User, comment: str, state: str
) -> CredentialRequest:
    """Store an approval or a denial, audit it once and notify the requester and the owner."""
    request.state = state
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.comment = (comment or "").strip()[:500]
    request.save(update_fields=["state", "decided_by", "decided_at", "comment", "updated_at"])
    audit_log(
        action=f"credentials.request.{RequestState(state).value}",
        actor=actor,
        organization=request.organization,
        target=credential,
        extra={"request_id": request.pk, "type": request.request_type, "comment": request.comment},
    )
    _notify_decision(request, credential)
    return request


def _notify_decision(request: CredentialRequest, credential) -> None:
    recipients = {u.email for u in (request.requester, credential.owner) if u is not None}
    notice_send_once(
        credential=credential,
        notice_type=f"approval_{request.state}",
        period=f"request-{request.pk}",
        recipients=sorted(recipients),
        context={"request": request},
    )


def approved_create_request(credential: models.Model) -> CredentialRequest | None:
    """Return the approved request that created a pending credential, if there is one."""
    return CredentialRequest.objects.filter(
        kind=kind_of(credential).key,
        object_id=credential.pk,
        request_type=RequestType.CREATE,
        state=RequestState.APPROVED,
    ).first()


@transaction.atomic
def credential_secret_issue(*, credential: models.Model, actor: User) -> tuple[models.Model, str]:
    """Give an approved, pending credential its first secret, once; only its owner may do this.

    Return the credential and the plaintext, which is never stored and never shown again.
    """
    kind = kind_of(credential)
    credential = _locked(credential)
    if credential.owner_id != getattr(actor, "pk", None):
        raise ValidationError("Only the credential's owner can generate its secret.", code="not_owner")
    if credential.status != CredentialStatus.PENDING:
        raise ValidationError("The secret was already generated.", code="issued")
    approved = approved_create_request(credential)
    if approved is None:
        raise ValidationError("This credential is still waiting for approval.", code="not_approved")
    policy = policy_for(credential.organization)
    plaintext, extra = kind.issue_secret(credential, actor, approved)
    credential.status = CredentialStatus.ACTIVE
    credential.review_due_at = timezone.now() + policy.review_interval(kind.key)
    _save(credential, kind, "status", "review_due_at")
    _audit(
        kind, "secret_issued", credential=credential, actor=actor, extra={"request_id": approved.pk, **extra}
    )
    kind.changed(credential)
    return credential, plaintext


@transaction.atomic
def credential_scopes_set(
    *, credential: models.Model, scopes: Iterable[str], actor: User | None, via: str = ""
) -> models.Model:
    """Set a credential's scopes directly; a widening under a policy requiring approval is refused.

    `via` names the interface or credential that made the change (`api`, `api_key:…`), for the audit.
    """
    kind = kind_of(credential)
    credential = _locked(credential)
    if credential.status != CredentialStatus.ACTIVE:
        raise ValidationError(f"A {credential.status} credential's scopes cannot change.", code="inactive")
    old = sorted(kind.scopes_of(credential))
    new = sorted(set(scopes))
    if scope_increase_needs_approval(credential.organization, old, new):
        raise ValidationError(
            {"scopes": "Your organisation requires an approval for more scopes."}, code="approval"
        )
    if new == old:
        return credential
    check_owner_may_hold(credential.organization, credential.owner, set(new) - set(old))
    kind.set_scopes(credential, new)
    extra = {"from": old, "to": new, **({"via": via} if via else {})}
    _audit(kind, "scopes_changed", credential=credential, actor=actor, extra=extra)
    kind.changed(credential)
    return credential


_UNSET: Any = object()


@transaction.atomic
def credential_policy_set(
    *,
    credential: models.Model,
    actor: User | None,
    allowed_ips: Any = _UNSET,
    rate_limit: Any = _UNSET,
    via: str = "",
) -> models.Model:
    """Change a credential's runtime policy (IP allowlist, rate limit): one audit row, effective at once.

    Omitted arguments keep their value. Any kind, any status: a revoked credential's policy is
    moot but harmless. Every server sees the change within a second (`kind.changed` drops the
    cached verification snapshot, as a revocation does).
    """
    kind = kind_of(credential)
    credential = _locked(credential)
    changes: dict[str, Any] = {}
    if allowed_ips is not _UNSET:
        new_ips = policy.clean_allowed_ips(allowed_ips)
        if new_ips != list(credential.allowed_ips or []):
            changes["allowed_ips"] = {"from": list(credential.allowed_ips or []), "to": new_ips}
            credential.allowed_ips = new_ips
    if rate_limit is not _UNSET:
        new_limit = policy.clean_rate_limit(rate_limit)
        if new_limit != (credential.rate_limit or None):
            changes["rate_limit"] = {"from": credential.rate_limit or None, "to": new_limit}
            credential.rate_limit = new_limit
    if not changes:
        return credential
    _save(credential, kind, "allowed_ips", "rate_limit")
    if via:
        changes["via"] = via
    _audit(kind, "policy_changed", credential=credential, actor=actor, extra=changes)
    kind.changed(credential)
    return credential


# --- ownership ------------------------------------------------------------------------------


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


def credentials_orphan(*, organization: Organization, user: User, actor: User | None) -> list[models.Model]:
    """Mark the departing member's credentials orphaned (they keep working until the grace ends).

    Called inside the removal's transaction (`portal.signals.member_removed`); one audit event per
    credential.
    """
    now = timezone.now()
    orphaned = []
    for credential in credentials_owned_by(organization, user):
        kind = kind_of(credential)
        credential = _locked(credential)
        if credential.orphaned_at is not None:
            continue
        credential.orphaned_at = now
        _save(credential, kind, "orphaned_at")
        _audit(kind, "orphaned", credential=credential, actor=actor, extra={"former_owner": user.email})
        orphaned.append(credential)
    return orphaned


#: Audit actions after which a member's credentials act with a different authority.
_AUTHORITY_CHANGES = frozenset({"portal.membership.role_changed", "portal.membership.removed"})


def on_membership_event(event, target) -> None:
    """Refresh the member's credentials when their role changes or they leave (an audit listener).

    A credential's authority is bounded by its owner's current role (portal.authz), and a
    verification snapshot caches that role: drop it now, so a demotion or removal takes effect
    on the very next request, on every server.
    """
    if event.action not in _AUTHORITY_CHANGES or not isinstance(target, Membership):
        return
    for kind in all_kinds():
        for credential in kind.model.objects.filter(
            organization_id=target.organization_id, owner_id=target.user_id
        ).select_related("organization", "owner"):
            kind.changed(credential)


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
    """Give the credential a new owner (a member); this clears an orphan and restores its suspension."""
    kind = kind_of(credential)
    credential = _locked(credential)
    check_owner_is_member(credential.organization, owner)
    if credential.status not in LIVE_STATUSES:
        raise ValidationError(f"A {credential.status} credential cannot change owner.", code="inactive")
    check_owner_may_hold(credential.organization, owner, kind.scopes_of(credential))
    previous = credential.owner.email if credential.owner_id else None
    credential.owner = owner
    changes = clear_orphan(credential)
    _save(credential, kind, "owner", "orphaned_at", "status", "suspended_at", "suspension_reason")
    extra = {"from": previous, "to": owner.email, **changes}
    if via:
        extra["via"] = via
    _audit(kind, "owner_reassigned", credential=credential, actor=actor, extra=extra)
    kind.changed(credential)
    return credential


# --- reviews and suspension -----------------------------------------------------------------


@transaction.atomic
def credential_recertify(
    *, credential: models.Model, actor: User, scopes: Iterable[str] | None = None
) -> models.Model:
    """Record the owner's review ("still needed; scopes still right"), optionally narrowing the scopes.

    Schedules the next review; a credential suspended for an overdue review works again.
    """
    kind = kind_of(credential)
    credential = _locked(credential)
    if credential.owner_id != actor.pk and not is_manager(actor, credential.organization):
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
        new = sorted(set(scopes))
        if set(new) - set(old):
            raise ValidationError({"scopes": "A review can only remove scopes; request an increase instead."})
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
    _save(
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
    _audit(kind, "recertified", credential=credential, actor=actor, extra=extra)
    kind.changed(credential)
    return credential


@transaction.atomic
def credential_suspend(*, credential: models.Model, actor: User | None, reason: str) -> models.Model:
    """Suspend a working credential: it is refused exactly like a revoked one, but can be restored."""
    if reason not in SuspensionReason.values:
        raise ValidationError("Unknown suspension reason.")
    kind = kind_of(credential)
    credential = _locked(credential)
    if credential.status != CredentialStatus.ACTIVE:
        raise ValidationError(
            f"Only an active credential can be suspended (this one is {credential.status}).", code="inactive"
        )
    credential.status = CredentialStatus.SUSPENDED
    credential.suspended_at = timezone.now()
    credential.suspension_reason = reason
    _save(credential, kind, "status", "suspended_at", "suspension_reason")
    _audit(kind, "suspended", credential=credential, actor=actor, extra={"reason": reason})
    kind.changed(credential)
    return credential


@transaction.atomic
def credential_restore(*, credential: models.Model, actor: User | None) -> models.Model:
    """Lift a suspension (staff or organisation admins); orphan and review marks stay as they are."""
    kind = kind_of(credential)
    credential = _locked(credential)
    if credential.status != CredentialStatus.SUSPENDED:
        raise ValidationError("Only a suspended credential can be restored.", code="not_suspended")
    reason = credential.suspension_reason
    credential.status = CredentialStatus.ACTIVE
    credential.suspended_at = None
    credential.suspension_reason = ""
    _save(credential, kind, "status", "suspended_at", "suspension_reason")
    _audit(kind, "restored", credential=credential, actor=actor, extra={"reason": reason})
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
        candidates = (
            kind.model.objects.filter(status=CredentialStatus.ACTIVE)
            .filter(models.Q(orphaned_at__lte=now) | models.Q(review_due_at__lte=now))
            .select_related("organization")
            .order_by("pk")
        )
        for credential in candidates.iterator(chunk_size=500):
            org = credential.organization
            policy = policies.get(org.pk) or policies.setdefault(org.pk, policy_for(org))
            reason = None
            if (
                credential.orphaned_at
                and credential.orphaned_at + timedelta(days=policy.orphan_grace_days) <= now
            ):
                reason = SuspensionReason.ORPHANED
            elif (
                credential.review_due_at
                and credential.review_due_at + timedelta(days=policy.overdue_grace_days) <= now
            ):
                reason = SuspensionReason.REVIEW_OVERDUE
            if reason is None:
                continue
            try:
                suspended.append(credential_suspend(credential=credential, actor=None, reason=reason))
            except ValidationError:
                continue  # changed meanwhile (revoked, reassigned, reviewed)
    return suspended


# --- notices --------------------------------------------------------------------------------


def notice_send_once(
    *,
    credential: models.Model,
    notice_type: str,
    period: str,
    recipients: Iterable[str],
    context: dict[str, Any] | None = None,
) -> bool:
    """Record a notice and email it after commit, unless it was already sent; return whether it is new.

    The unique (credential, notice type, period) row makes this safe from cron at any
    frequency and from concurrent runs.
    """
    from django.template.loader import render_to_string

    kind = kind_of(credential)
    recipients = sorted({r for r in recipients if r})
    if not recipients:
        return False
    try:
        with transaction.atomic():
            Notice.objects.create(
                organization=credential.organization,
                kind=kind.key,
                object_id=credential.pk,
                notice_type=notice_type,
                period=period[:64],
                recipients=recipients,
            )
    except IntegrityError:
        return False
    link = settings.PORTAL_BASE_URL + (
        _approvals_path(credential) if notice_type == "approval_requested" else credential_path(credential)
    )
    body_context = {
        "credential": credential,
        "kind": kind,
        "notice_type": notice_type,
        "link": link,
        "organization": credential.organization,
        **(context or {}),
    }
    subject = render_to_string("credentials/governance/email/subject.txt", body_context).strip()
    body = render_to_string("credentials/governance/email/notice.txt", body_context)

    def send() -> None:
        try:
            send_mail(subject, body, None, recipients)
        except Exception:  # a mail outage must not break the change that caused the notice
            logger.warning(
                "Could not send the %s notice for %s %s", notice_type, kind.key, credential.pk, exc_info=True
            )

    transaction.on_commit(send)
    return True


def _approvals_path(credential) -> str:
    from django.urls import reverse

    return reverse("org-approvals", kwargs={"org_slug": credential.organization.slug})


REVIEW_DUE_NOTICE_WITHIN = timedelta(days=14)


def _scheduled_notices(now: datetime) -> Iterable[tuple[str, models.Q, str]]:
    """Yield (notice type, condition on the inventory queryset, column whose value is the period)."""
    from credentials.governance.selectors import flag_q

    active = models.Q(status=CredentialStatus.ACTIVE)
    # A credential with 3 days or less left gets only the 3-day notice; a rotated API key,
    # which expires at the end of its overlap by design, gets none.
    current = models.Q(row_superseded=False)
    yield (
        "expiring_14d",
        current & flag_q("expiring", now) & models.Q(row_expires__gt=now + timedelta(days=3)),
        "row_expires",
    )
    yield (
        "expiring_3d",
        current & active & models.Q(row_expires__gt=now, row_expires__lte=now + timedelta(days=3)),
        "row_expires",
    )
    yield (
        "review_due",
        active & models.Q(review_due_at__gt=now, review_due_at__lte=now + REVIEW_DUE_NOTICE_WITHIN),
        "review_due_at",
    )
    yield "review_overdue", flag_q("review_overdue", now), "review_due_at"
    yield "orphaned", flag_q("orphaned", now), "orphaned_at"
    yield "suspended", flag_q("suspended", now), "suspended_at"


def credential_notices_send(*, now: datetime | None = None) -> int:
    """Email every lifecycle notice that is due and was not sent before; return how many were sent.

    Each (credential, notice, period) goes out once, however often this runs: the period is
    the date the notice is about (the expiry, the due date, when it was orphaned or suspended),
    so a new due date after a review brings a new notice.
    """
    from credentials.governance.selectors import COLUMNS

    now = now or timezone.now()
    managers: dict[int, list[str]] = {}
    sent = 0
    for kind in all_kinds():
        for notice_type, condition, period_column in _scheduled_notices(now):
            rows = kind.inventory_queryset(None).filter(condition).values(*COLUMNS)
            for values in rows.iterator(chunk_size=500):
                period = values[period_column]
                if period is None:
                    continue
                if Notice.objects.filter(
                    kind=kind.key, object_id=values["id"], notice_type=notice_type, period=period.isoformat()
                ).exists():
                    continue
                credential = kind.model.objects.select_related("organization", "owner").get(pk=values["id"])
                org_id = credential.organization_id
                if org_id not in managers:
                    managers[org_id] = [u.email for u in managers_of(credential.organization)]
                recipients = list(managers[org_id])
                if credential.owner_id and notice_type != "orphaned":
                    recipients.append(credential.owner.email)
                with transaction.atomic():
                    if notice_send_once(
                        credential=credential,
                        notice_type=notice_type,
                        period=period.isoformat(),
                        recipients=recipients,
                        context={"when": period},
                    ):
                        sent += 1
                        if notice_type.startswith("expiring"):
                            _expiring_webhook(credential, notice_type, period)
    return sent


def _expiring_webhook(credential, notice_type: str, expires_at: datetime) -> None:
    """Queue the `credential.expiring` webhook with its notice (no audit event exists for it)."""
    from credentials.webhooks.events import webhook_event_emit

    webhook_event_emit(
        event="expiring",
        credential=credential,
        actor=None,
        extra={"expires_at": expires_at.isoformat(), "notice": notice_type},
    )
