"""Writes for API keys: create, request, update, rotate, revoke.

Every change writes one audit event in its own transaction and refreshes the key's cached
verification snapshot (`credentials.api_keys.verification`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from credentials import lifetimes, policy
from credentials.api_keys import keys
from credentials.api_keys.kind_policy import check_new_api_key, check_new_api_key_request
from credentials.api_keys.models import ApiKey, Environment
from credentials.api_keys.verification import snapshot_publish
from credentials.governance import approvals, edits, org_policy, ownership
from credentials.governance.common import LIVE_STATUSES, credential_audit
from credentials.governance.models import CredentialRequest, CredentialState, RequestType
from credentials.governance.registry import kind_of
from credentials.insight.services import scope_use_carry_over
from credentials.leaks.models import LeakReport
from credentials.models import Scope
from credentials.names import validate_credential_name
from portal.infra.crypto import keyed_digest
from portal.models import Organization, User

logger = logging.getLogger(__name__)

MAX_OVERLAP = timedelta(days=7)
DEFAULT_OVERLAP = timedelta(hours=24)


# --- validation -----------------------------------------------------------------------------


def check_scopes(scopes: Iterable[str | Scope]) -> list[str]:
    names = sorted({s.name if isinstance(s, Scope) else str(s) for s in scopes})
    known = set(Scope.objects.filter(name__in=names).values_list("name", flat=True))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationError(
            {"scopes": f"Not in the scope catalogue: {', '.join(unknown)}."}, code="unknown_scope"
        )
    return names


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the key a name."}, code="name")
    if len(name) > 100:
        raise ValidationError({"name": "Use at most 100 characters."}, code="name")
    try:
        # As the forms and serializers check it, for every other caller (the CLI, the admin).
        validate_credential_name(name)
    except ValidationError as exc:
        raise ValidationError({"name": exc.error_list}) from exc
    return name


def _check_new(
    organization: Organization, name: str, owner: User, scopes: Iterable[str | Scope], environment: str | None
) -> tuple[str, list[str], str]:
    """Check what a new key (created or requested) is given; return its name, scope names and environment."""
    name = _check_name(name)
    ownership.check_owner_is_member(organization, owner)
    scope_names = check_scopes(scopes)
    ownership.check_owner_may_hold(organization, owner, scope_names)
    environment = environment or settings.PORTAL_API_KEY_ENVIRONMENT
    if environment not in Environment.values:
        raise ValidationError({"environment": "Choose live or test."}, code="environment")
    return name, scope_names, environment


# --- writes ---------------------------------------------------------------------------------


def _new_key_row(**fields: Any) -> tuple[ApiKey, str]:
    key_id, plaintext = keys.generate(fields["environment"])
    return _with_secret(key_id, plaintext, **fields)


def _with_secret(key_id: str, plaintext: str, **fields: Any) -> tuple[ApiKey, str]:
    pepper_id, digest = keyed_digest(plaintext)
    fields.setdefault("lineage", key_id)  # a new key starts its chain; a successor is given its own
    api_key = ApiKey(key_id=key_id, digest=digest, pepper_id=pepper_id, last4=plaintext[-4:], **fields)
    return api_key, plaintext


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    name: str,
    owner: User,
    scopes: Iterable[str | Scope],
    actor: User | None,
    environment: str | None = None,
    expires_at: datetime | None = None,
    allowed_ips: Iterable[str] = (),
    rate_limit: dict[str, int] | None = None,
    description: str = "",
    via: str = "",
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored and never shown again."""
    name, scope_names, environment = _check_new(organization, name, owner, scopes, environment)
    description = description.strip()
    if len(description) > 500:
        raise ValidationError({"description": "Use at most 500 characters."}, code="description")
    allowed_ips = policy.clean_allowed_ips(list(allowed_ips))
    rate_limit = policy.clean_rate_limit(rate_limit)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."}, code="expires_at")
    # The policy on kinds (locks the policy row, so a concurrent policy change sees this key).
    expires_at = check_new_api_key(organization, environment, expires_at)
    expires_at = org_policy.check_lifetime(organization, "api_key", expires_at)
    api_key, plaintext = _new_key_row(
        organization=organization,
        name=name,
        description=description,
        owner=owner,
        created_by=actor if isinstance(actor, User) else None,
        scopes=scope_names,
        environment=environment,
        expires_at=expires_at,
        review_due_at=org_policy.review_due_from(organization, "api_key"),
        allowed_ips=allowed_ips,
        rate_limit=rate_limit,
    )
    # The organisation's runtime rules: the default limit, the ceiling, an allowlist on live keys.
    rate_limit = org_policy.runtime_policy_for_new(api_key, allowed_ips=allowed_ips, rate_limit=rate_limit)
    api_key.rate_limit = rate_limit
    api_key.save()
    credential_audit(
        "credentials.api_key.created",
        api_key,
        actor=actor,
        via=via,
        extra={
            "key_id": api_key.key_id,
            "owner": owner.email,
            "scopes": scope_names,
            "environment": environment,
            "expires_at": expires_at.isoformat() if expires_at else None,
            **({"allowed_ips": allowed_ips} if allowed_ips else {}),
            **({"rate_limit": rate_limit} if rate_limit else {}),
        },
    )
    return api_key, plaintext


@transaction.atomic
def api_key_request(
    *,
    organization: Organization,
    name: str,
    owner: User,
    scopes: Iterable[str | Scope],
    requester: User,
    justification: str,
    environment: str | None = None,
    lifetime_days: int | None = None,
    allowed_ips: Iterable[str] = (),
    rate_limit: dict[str, int] | None = None,
) -> tuple[ApiKey, CredentialRequest]:
    """Store a pending key (an id, no secret) and ask the organisation's approvers for it.

    After approval its owner generates the secret once (`credential_secret_issue`).
    """
    name, scope_names, environment = _check_new(organization, name, owner, scopes, environment)
    check_new_api_key_request(organization, environment, lifetime_days)
    if lifetime_days is not None:
        org_policy.check_lifetime(organization, "api_key", lifetimes.expiry_in_days(lifetime_days))
    # The public id is reserved now so the pending key has a page; the secret comes later.
    key_id = keys.generate(environment)[0]
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name,
        owner=owner,
        created_by=requester,
        scopes=scope_names,
        environment=environment,
        status=CredentialState.PENDING,
        key_id=key_id,
        lineage=key_id,
        digest=None,
    )
    request = approvals.credential_request_create(
        credential=api_key,
        requester=requester,
        request_type=RequestType.CREATE,
        justification=justification,
        requested_scopes=scope_names,
        lifetime_days=lifetime_days,
        allowed_ips=allowed_ips,
        rate_limit=rate_limit,
    )
    return api_key, request


def _locked(api_key: ApiKey) -> ApiKey:
    return (
        ApiKey.objects.select_for_update(of=("self",))
        .select_related("organization", "owner")
        .get(pk=api_key.pk)
    )


@transaction.atomic
def api_key_update(
    *,
    api_key: ApiKey,
    actor: User | None,
    name: str | None = None,
    description: str | None = None,
    owner: User | None = None,
    scopes: Iterable[str | Scope] | None = None,
    via: str = "",
) -> ApiKey:
    """Change a key's name, description, owner or scopes (the secret stays the same)."""
    if owner is not None:
        # Memberships before credentials (ownership.lock_membership): a removal holds the
        # organisation's owners' rows and waits for this key.
        ownership.lock_membership(api_key.organization_id, owner.pk)
    api_key = _locked(api_key)
    changes: dict[str, Any] = {}
    if name is not None and (name := _check_name(name)) != api_key.name:
        changes["name"] = {"from": api_key.name, "to": name}
        api_key.name = name
    if description is not None and (description := description.strip()) != api_key.description:
        if len(description) > 500:
            raise ValidationError({"description": "Use at most 500 characters."}, code="description")
        changes["description"] = {"from": api_key.description, "to": description}
        api_key.description = description
    if owner is not None and (owner.pk != api_key.owner_id or api_key.orphaned_at is not None):
        # Naming an orphaned key's owner (a member again) takes it back, as credential_reassign_owner.
        if api_key.status not in LIVE_STATUSES:  # as ownership.credential_reassign_owner
            raise ValidationError(f"A {api_key.status} credential cannot change owner.", code="inactive")
        ownership.check_owner_is_member(api_key.organization, owner)
        # The new owner must be allowed every scope the key keeps.
        kept = check_scopes(scopes) if scopes is not None else api_key.scopes
        ownership.check_owner_may_hold(api_key.organization, owner, kept)
        changes["owner"] = {"from": api_key.owner.email if api_key.owner else None, "to": owner.email}
        api_key.owner = owner
        changes.update(ownership.clear_orphan(api_key))
    if scopes is not None:
        names = check_scopes(scopes)
        if names != sorted(api_key.scopes) and api_key.status != CredentialState.ACTIVE:
            # As credentials.governance.edits: a pending key's approval request names its scopes.
            # A refusal of the key's state, not of the value sent (REST: 409, as for an application).
            raise ValidationError(f"A {api_key.status} key's scopes cannot change.", code="inactive")
        if names != sorted(api_key.scopes):
            # Rotated (judged under the lock): the successor in use keeps its scopes (REST: 409).
            edits.check_not_superseded(kind_of(api_key), api_key)
        if org_policy.scope_increase_needs_approval(api_key.organization, api_key.scopes, names):
            raise ValidationError(
                {"scopes": "Your organisation approves scope increases: request them in the dashboard."},
                code="approval",
            )
        ownership.check_owner_may_hold(
            api_key.organization, owner or api_key.owner, set(names) - set(api_key.scopes)
        )
        if names != sorted(api_key.scopes):
            changes["scopes"] = {"from": sorted(api_key.scopes), "to": names}
            api_key.scopes = names
    if not changes:
        return api_key
    api_key.save(
        update_fields=[
            "name",
            "description",
            "owner",
            "scopes",
            "orphaned_at",
            "status",
            "suspended_at",
            "suspension_reason",
            "updated_at",
        ]
    )
    credential_audit("credentials.api_key.updated", api_key, actor=actor, via=via, extra=changes)
    snapshot_publish(api_key)
    return api_key


@transaction.atomic
def api_key_rotate(
    *, api_key: ApiKey, actor: User | None, overlap: timedelta = DEFAULT_OVERLAP, via: str = ""
) -> tuple[ApiKey, str]:
    """Issue a successor with the same name, owner, scopes and environment; return it with its plaintext.

    The successor keeps the runtime policy and the rate-limit budget (its `lineage`). The old
    key keeps working for `overlap` (0 to 7 days), then stops. A key that already
    has a successor, or no longer works, cannot be rotated. The row lock plus the unique
    `replaces` column leave exactly one successor under concurrent rotations.
    """
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise ValidationError({"overlap": "Choose an overlap between 0 and 7 days."}, code="overlap")
    # The successor gets the key's owner: their membership first, so a removal orphans it too.
    owner_id = ownership.lock_owner_before(api_key)
    # Then the policy row: the successor inherits the key's flag against the policy, so a policy
    # change either flagged the key before (and the successor copies it) or waits and flags both.
    org_policy.policy_locked(api_key.organization)
    old = _locked(api_key)
    ownership.check_owner_unchanged(old, owner_id)
    if old.state != CredentialState.ACTIVE:
        raise ValidationError(f"This key is {old.state}; only an active key can be rotated.", code="inactive")
    if ApiKey.objects.filter(replaces=old).exists():
        raise ValidationError("This key was already rotated; rotate its successor instead.", code="rotated")
    moved_to = getattr(old, "moved_to_application", None)  # the M2M kind's reverse of moved_from_key
    if moved_to is not None and moved_to.status in LIVE_STATUSES:
        # Its successor would carry the integration past the cut-over, linked to nothing.
        raise ValidationError(
            f"This key was moved to the M2M application {moved_to.name}: rotate the application's "
            "secret instead, or revoke the application first.",
            code="moved",
        )
    if overlap and LeakReport.objects.filter(kind="api_key", object_id=old.pk).exists():
        # Its secret is public: restoring a suspended key and rotating it, as the leak notice
        # advises, must not keep the leaked secret working for the overlap.
        raise ValidationError(
            {"overlap": "This key's secret was reported leaked in public: rotate it with no overlap."},
            code="leaked",
        )
    now = timezone.now()
    # The successor keeps the old key's lifetime, counted from now, within today's bounds.
    expires_at = lifetimes.successor_expiry(
        created_at=old.created_at,
        expires_at=old.expires_at,
        now=now,
        max_days=org_policy.max_lifetime_days(old.organization, "api_key"),
    )
    if expires_at is None:
        # A key that never expires predates the policy's maximum (or there is none): its
        # successor is a new key, so it gets the maximum like any key created without expiry.
        expires_at = org_policy.check_lifetime(old.organization, "api_key", None)
    successor, plaintext = _new_key_row(
        organization=old.organization,
        name=old.name,
        owner=old.owner,
        created_by=actor if isinstance(actor, User) else None,
        scopes=list(old.scopes),
        environment=old.environment,
        expires_at=expires_at,
        replaces=old,
        # One integration, one rate-limit budget: the successor counts where the old key does, so
        # neither a rotation nor the overlap's two live keys give it more (credentials.policy).
        lineage=old.lineage,
        created_at=now,
        # Rotation is not a review: the successor inherits the review schedule and orphan mark.
        review_due_at=old.review_due_at,
        last_reviewed_at=old.last_reviewed_at,
        last_reviewed_by=old.last_reviewed_by,
        orphaned_at=old.orphaned_at,
        # The runtime policy carries over: a rotation must not lift an allowlist or a limit.
        allowed_ips=list(old.allowed_ips or []),
        rate_limit=old.rate_limit or None,
        # Rotating keeps an integration alive, so the policy on kinds allows it; the flag stays.
        policy_flagged_at=old.policy_flagged_at,
    )
    try:
        with transaction.atomic():
            successor.save()
    except IntegrityError as exc:
        raise ValidationError(
            "This key was already rotated; rotate its successor instead.", code="rotated"
        ) from exc
    overlap_end = now + overlap
    if old.expires_at is None or overlap_end < old.expires_at:
        old.expires_at = overlap_end
    old.rotated_at = now
    old.save(update_fields=["expires_at", "rotated_at", "updated_at"])
    credential_audit(
        "credentials.api_key.rotated",
        old,
        actor=actor,
        via=via,
        extra={
            "key_id": old.key_id,
            "successor_key_id": successor.key_id,
            "overlap_seconds": int(overlap.total_seconds()),
            "old_key_expires_at": old.expires_at.isoformat(),
        },
    )
    scope_use_carry_over(
        organization_id=old.organization_id,
        from_kind="api_key",
        from_ref=old.key_id,
        to_kind="api_key",
        to_ref=successor.key_id,
    )
    snapshot_publish(old)
    return successor, plaintext


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User | None, reason: str, via: str = "") -> ApiKey:
    """Revoke a key at once; verification refuses it on every server within a second."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the key is revoked."}, code="reason")
    waiting = approvals.waiting_requests_locked([api_key])  # before the key, as a decision does
    api_key = _locked(api_key)
    if api_key.status == CredentialState.REVOKED:
        raise ValidationError("This key is already revoked.", code="revoked")
    if api_key.status == CredentialState.DENIED or (
        api_key.status == CredentialState.PENDING and approvals.approved_create_request(api_key) is None
    ):
        raise ValidationError("This key was never issued; deny its request instead.", code="inactive")
    # An approved key whose secret was never generated (say, the policy changed since) may be
    # revoked, or it would stay pending for good. Having no secret, it ends `denied`, the state
    # of a key that was never issued (a revoked key has a digest: api_key_digest_only_once_issued).
    never_issued = api_key.status == CredentialState.PENDING
    api_key.status = CredentialState.DENIED if never_issued else CredentialState.REVOKED
    api_key.revoked_at = None if never_issued else timezone.now()
    api_key.revoked_by = actor if isinstance(actor, User) else None
    api_key.revocation_reason = reason[:255]
    # A suspended key ends revoked too, its suspension over (api_key_suspended_at_matches_status).
    api_key.suspended_at = None
    api_key.suspension_reason = ""
    api_key.save(
        update_fields=[
            "status",
            "revoked_at",
            "revoked_by",
            "revocation_reason",
            "suspended_at",
            "suspension_reason",
            "updated_at",
        ]
    )
    credential_audit(
        "credentials.api_key.revoked",
        api_key,
        actor=actor,
        via=via,
        extra={
            "key_id": api_key.key_id,
            "reason": api_key.revocation_reason,
            **({"never_issued": True} if never_issued else {}),
        },
    )
    # A request still waiting about it (a scope increase) would stay in the approvers' queue with
    # nothing left to decide: closed as a withdrawn one is, each with its one event.
    for request in waiting:
        approvals.locked_request_cancel(
            request,
            actor=actor,
            extra={"reason": "key_revoked", "key_id": api_key.key_id, **({"via": via} if via else {})},
        )
    snapshot_publish(api_key)
    return api_key
