"""Writes for API keys (create, update, rotate, revoke) and the verification hot path.

Every change writes one audit event in its own transaction. Verification does at most one
indexed query and none while a short-lived cache entry exists; see docs/api-keys.md.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.signals import request_finished
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from credentials import keys, lifetimes, policy
from credentials.governance import services as governance
from credentials.governance.models import CredentialRequest, NewApiKeys, RequestType
from credentials.governance.registry import MovedLink
from credentials.models import ApiKey, ApiKeyStatus, Environment, Scope
from portal import authz, hotcache
from portal.crypto import keyed_digest, verify_digest
from portal.metrics import verification_metrics
from portal.middleware import current_request_context
from portal.models import Membership, Organization, User
from portal.principal import Principal
from portal.selectors import role_of
from portal.services.audit import audit_log

logger = logging.getLogger(__name__)

MAX_OVERLAP = timedelta(days=7)
DEFAULT_OVERLAP = timedelta(hours=24)
#: How often `last_used_at` may be written for one key.
LAST_USED_INTERVAL_SECONDS = 60
_CACHE_PREFIX = "credentials:api_key:v1:"
_USED_PREFIX = "credentials:api_key_used:v1:"


# --- validation -----------------------------------------------------------------------------


def _check_scopes(scopes: Iterable[str | Scope]) -> list[str]:
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
    return name


# --- the cache ------------------------------------------------------------------------------


def cache_seconds() -> int:
    """Return how long a verification snapshot may be cached.

    A shared cache (Redis) is invalidated by every change, so entries may live longer; a
    per-process cache cannot be invalidated on other servers, so its entries live 1 second.
    """
    configured = getattr(settings, "PORTAL_API_KEY_CACHE_SECONDS", None)
    if configured is not None:
        return int(configured)
    backend = settings.CACHES["default"]["BACKEND"]
    return 30 if "redis" in backend.lower() or "memcached" in backend.lower() else 1


def _snapshot(api_key: ApiKey) -> dict[str, Any]:
    # Everything verification needs, and no secret: the digest is a keyed hash of the key.
    return {
        "pk": api_key.pk,
        "key_id": api_key.key_id,
        "pepper_id": api_key.pepper_id,
        "digest": api_key.digest,
        "status": api_key.status,
        "expires_at": api_key.expires_at.timestamp() if api_key.expires_at else None,
        "organization_id": api_key.organization_id,
        "organization_slug": api_key.organization.slug,
        "owner_id": api_key.owner_id,
        "owner_email": api_key.owner.email if api_key.owner_id else None,
        "owner_role": role_of(api_key.owner_id, api_key.organization_id),
        "scopes": list(api_key.scopes),
        "environment": api_key.environment,
        "name": api_key.name,
        "allowed_ips": list(api_key.allowed_ips or []),
        "rate_limit": api_key.rate_limit or None,
    }


def _cache_key(key_id: str) -> str:
    return _CACHE_PREFIX + key_id


def hot_keys(raw: str) -> list[str]:
    """Return the cache keys verifying and recording the use of `raw` read, for one batched read.

    The authentication class reads them together with its rate-limit counters in one round
    trip (`portal.hotcache`); a malformed key needs none.
    """
    parsed = keys.parse(raw)
    if parsed is None:
        return []
    return [_cache_key(parsed.key_id), _USED_PREFIX + parsed.key_id]


def _publish(api_key: ApiKey) -> None:
    """Drop the cached snapshot now, and store the fresh one once the change has committed.

    Readers only ever `add`, so a reader holding a pre-change row cannot overwrite the
    fresh snapshot written after commit.
    """
    try:
        cache.delete(_cache_key(api_key.key_id))
    except Exception:
        logger.warning("Could not drop the cached API key %s", api_key.key_id, exc_info=True)

    def store() -> None:
        try:
            cache.set(_cache_key(api_key.key_id), _snapshot(api_key), cache_seconds())
        except Exception:
            logger.warning("Could not refresh the cached API key %s", api_key.key_id, exc_info=True)

    transaction.on_commit(store)


# --- writes ---------------------------------------------------------------------------------


def _new_key_row(**fields: Any) -> tuple[ApiKey, str]:
    key_id, plaintext = keys.generate(fields["environment"])
    return _with_secret(key_id, plaintext, **fields)


def _with_secret(key_id: str, plaintext: str, **fields: Any) -> tuple[ApiKey, str]:
    pepper_id, digest = keyed_digest(plaintext)
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
    via: str = "",
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored and never shown again."""
    name = _check_name(name)
    allowed_ips = policy.clean_allowed_ips(list(allowed_ips))
    rate_limit = policy.clean_rate_limit(rate_limit)
    governance.check_owner_is_member(organization, owner)
    scope_names = _check_scopes(scopes)
    governance.check_owner_may_hold(organization, owner, scope_names)
    environment = environment or settings.PORTAL_API_KEY_ENVIRONMENT
    if environment not in Environment.values:
        raise ValidationError({"environment": "Choose live or test."}, code="environment")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."}, code="expires_at")
    # The policy on kinds (locks the policy row, so a concurrent policy change sees this key).
    expires_at = governance.check_new_api_key(organization, environment, expires_at)
    expires_at = governance.check_lifetime(organization, "api_key", expires_at)
    api_key, plaintext = _new_key_row(
        organization=organization,
        name=name,
        owner=owner,
        created_by=actor if isinstance(actor, User) else None,
        scopes=scope_names,
        environment=environment,
        expires_at=expires_at,
        review_due_at=governance.review_due_from(organization, "api_key"),
        allowed_ips=allowed_ips,
        rate_limit=rate_limit,
    )
    api_key.save()
    audit_log(
        action="credentials.api_key.created",
        actor=actor,
        organization=organization,
        target=api_key,
        extra=_extra(
            {
                "key_id": api_key.key_id,
                "owner": owner.email,
                "scopes": scope_names,
                "environment": environment,
                "expires_at": expires_at.isoformat() if expires_at else None,
                **({"allowed_ips": allowed_ips} if allowed_ips else {}),
                **({"rate_limit": rate_limit} if rate_limit else {}),
            },
            via,
        ),
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
) -> tuple[ApiKey, CredentialRequest]:
    """Store a pending key (an id, no secret) and ask the organisation's approvers for it.

    After approval its owner generates the secret once (`credential_secret_issue`).
    """
    name = _check_name(name)
    governance.check_owner_is_member(organization, owner)
    scope_names = _check_scopes(scopes)
    governance.check_owner_may_hold(organization, owner, scope_names)
    environment = environment or settings.PORTAL_API_KEY_ENVIRONMENT
    if environment not in Environment.values:
        raise ValidationError({"environment": "Choose live or test."}, code="environment")
    _check_kind_policy(organization, environment, lifetime_days)
    if lifetime_days is not None:
        governance.check_lifetime(organization, "api_key", lifetimes.expiry_in_days(lifetime_days))
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name,
        owner=owner,
        created_by=requester,
        scopes=scope_names,
        environment=environment,
        status=ApiKeyStatus.PENDING,
        # The public id is reserved now so the pending key has a page; the secret comes later.
        key_id=keys.generate(environment)[0],
        digest=None,
    )
    request = governance.credential_request_create(
        credential=api_key,
        requester=requester,
        request_type=RequestType.CREATE,
        justification=justification,
        requested_scopes=scope_names,
        lifetime_days=lifetime_days,
    )
    return api_key, request


def _issue_first_secret(api_key: ApiKey, actor: User | None, request: CredentialRequest) -> tuple[str, dict]:
    """Give a pending, approved key its secret (the governance service sets the status and audits)."""
    key_id, plaintext = keys.generate(api_key.environment, key_id=api_key.key_id)
    api_key.pepper_id, api_key.digest = keyed_digest(plaintext)
    api_key.last4 = plaintext[-4:]
    api_key.created_at = timezone.now()
    expires_at = lifetimes.expiry_in_days(request.lifetime_days) if request.lifetime_days else None
    # The policy on kinds as it is now, not as it was when the key was requested or approved.
    expires_at = governance.check_new_api_key(api_key.organization, api_key.environment, expires_at)
    api_key.expires_at = governance.check_lifetime(api_key.organization, "api_key", expires_at)
    # The digest and the status change together (the table's check constraint).
    api_key.status = ApiKeyStatus.ACTIVE
    api_key.save(
        update_fields=["pepper_id", "digest", "last4", "status", "created_at", "expires_at", "updated_at"]
    )
    return plaintext, {
        "key_id": api_key.key_id,
        "expires_at": api_key.expires_at.isoformat() if api_key.expires_at else None,
    }


def _check_kind_policy(organization: Organization, environment: str, lifetime_days: int | None) -> None:
    """Refuse a key the policy on kinds does not allow (a request or an approval: no key row yet)."""
    governance.check_new_api_key(
        organization, environment, lifetimes.expiry_in_days(lifetime_days) if lifetime_days else None
    )


def _policy_violations(policy) -> Any:
    """Return the organisation's working keys the policy on kinds would not allow to be created today."""
    now = timezone.now()
    working = ApiKey.objects.filter(
        organization_id=policy.organization_id, status=ApiKeyStatus.ACTIVE
    ).exclude(expires_at__lte=now)
    against = Q(pk__in=[])
    for environment in Environment.values:
        rule, days = policy.new_api_keys(environment)
        if rule == NewApiKeys.FORBIDDEN:
            against |= Q(environment=environment)
        elif rule == NewApiKeys.EXPIRING and days:
            latest = lifetimes.add_clamped(lifetimes.expiry_in_days(days, now=now), lifetimes.GRACE)
            against |= Q(environment=environment) & (Q(expires_at__isnull=True) | Q(expires_at__gt=latest))
    return working.filter(against)


def _moved_links(ids: Iterable[int]) -> dict[int, MovedLink]:
    """Return the M2M application each key was moved to (the reverse of `M2MApplication.moved_from_key`)."""
    rows = ApiKey.objects.filter(pk__in=list(ids), moved_to_application__isnull=False).values_list(
        "pk", "moved_to_application__pk", "moved_to_application__client_id", "moved_to_application__name"
    )
    return {pk: MovedLink("to", "m2m_app", app_pk, client_id, name) for pk, app_pk, client_id, name in rows}


def _extra(extra: dict[str, Any], via: str) -> dict[str, Any]:
    if via:
        extra["via"] = via
    return extra


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
    if owner is not None and owner.pk != api_key.owner_id:
        governance.check_owner_is_member(api_key.organization, owner)
        # The new owner must be allowed every scope the key keeps.
        kept = _check_scopes(scopes) if scopes is not None else api_key.scopes
        governance.check_owner_may_hold(api_key.organization, owner, kept)
        changes["owner"] = {"from": api_key.owner.email if api_key.owner else None, "to": owner.email}
        api_key.owner = owner
        changes.update(governance.clear_orphan(api_key))
    if scopes is not None:
        names = _check_scopes(scopes)
        if governance.scope_increase_needs_approval(api_key.organization, api_key.scopes, names):
            raise ValidationError(
                {"scopes": "Your organisation approves scope increases: request them in the dashboard."},
                code="approval",
            )
        governance.check_owner_may_hold(
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
    audit_log(
        action="credentials.api_key.updated",
        actor=actor,
        organization=api_key.organization,
        target=api_key,
        extra=_extra(changes, via),
    )
    _publish(api_key)
    return api_key


@transaction.atomic
def api_key_rotate(
    *, api_key: ApiKey, actor: User | None, overlap: timedelta = DEFAULT_OVERLAP, via: str = ""
) -> tuple[ApiKey, str]:
    """Issue a successor with the same name, owner, scopes and environment; return it with its plaintext.

    The old key keeps working for `overlap` (0 to 7 days), then stops. A key that already
    has a successor, or no longer works, cannot be rotated. The row lock plus the unique
    `replaces` column leave exactly one successor under concurrent rotations.
    """
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise ValidationError({"overlap": "Choose an overlap between 0 and 7 days."}, code="overlap")
    old = _locked(api_key)
    if old.state != ApiKeyStatus.ACTIVE:
        raise ValidationError(f"This key is {old.state}; only an active key can be rotated.", code="inactive")
    if ApiKey.objects.filter(replaces=old).exists():
        raise ValidationError("This key was already rotated; rotate its successor instead.", code="rotated")
    now = timezone.now()
    # The successor keeps the old key's lifetime, counted from now, within today's bounds.
    expires_at = lifetimes.successor_expiry(
        created_at=old.created_at,
        expires_at=old.expires_at,
        now=now,
        max_days=governance.max_lifetime_days(old.organization, "api_key"),
    )
    successor, plaintext = _new_key_row(
        organization=old.organization,
        name=old.name,
        owner=old.owner,
        created_by=actor if isinstance(actor, User) else None,
        scopes=list(old.scopes),
        environment=old.environment,
        expires_at=expires_at,
        replaces=old,
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
    audit_log(
        action="credentials.api_key.rotated",
        actor=actor,
        organization=old.organization,
        target=old,
        extra=_extra(
            {
                "key_id": old.key_id,
                "successor_key_id": successor.key_id,
                "overlap_seconds": int(overlap.total_seconds()),
                "old_key_expires_at": old.expires_at.isoformat(),
            },
            via,
        ),
    )
    _publish(old)
    return successor, plaintext


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User | None, reason: str, via: str = "") -> ApiKey:
    """Revoke a key at once; verification refuses it on every server within a second."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the key is revoked."}, code="reason")
    api_key = _locked(api_key)
    if api_key.status == ApiKeyStatus.REVOKED:
        raise ValidationError("This key is already revoked.", code="revoked")
    if api_key.status in (ApiKeyStatus.PENDING, ApiKeyStatus.DENIED):
        raise ValidationError("This key was never issued; deny its request instead.", code="inactive")
    api_key.status = ApiKeyStatus.REVOKED
    api_key.revoked_at = timezone.now()
    api_key.revoked_by = actor if isinstance(actor, User) else None
    api_key.revocation_reason = reason[:255]
    api_key.save(update_fields=["status", "revoked_at", "revoked_by", "revocation_reason", "updated_at"])
    audit_log(
        action="credentials.api_key.revoked",
        actor=actor,
        organization=api_key.organization,
        target=api_key,
        extra=_extra({"key_id": api_key.key_id, "reason": api_key.revocation_reason}, via),
    )
    _publish(api_key)
    return api_key


# --- verification (the hot path) ------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """The outcome of checking a presented key: `valid`, else a machine-readable `code`."""

    valid: bool
    code: str = ""
    key: dict[str, Any] | None = None
    #: For usage metering only: the snapshot of a known key presented with a wrong secret.
    wrong_secret_of: dict[str, Any] | None = None

    @property
    def expires_at(self) -> datetime | None:
        """Return the key's expiry as an aware datetime, if it has one."""
        ts = self.key["expires_at"] if self.key else None
        return datetime.fromtimestamp(ts, tz=UTC) if ts is not None else None

    def principal(self) -> Principal:
        """Return the machine principal for a valid key."""
        assert self.valid and self.key
        key = self.key
        return Principal(
            credential_type="api_key",
            credential_id=key["key_id"],
            organization_id=key["organization_id"],
            organization_slug=key["organization_slug"],
            # A key acts for its owner: what it may use is bounded by the owner's role right now.
            scopes=authz.effective_scopes(key["scopes"], key["owner_role"]),
            owner_email=key["owner_email"],
            owner_id=key["owner_id"],
            owner_role=key["owner_role"],
            expires_at=self.expires_at,
            extra={"environment": key["environment"], "name": key["name"]},
        )


MALFORMED = Verification(valid=False, code="malformed")
NOT_FOUND = Verification(valid=False, code="not_found")


@verification_metrics("api_key", outcome_of=lambda v: "valid" if v.valid else v.code)
def api_key_verify(raw: str) -> Verification:
    """Check a presented key: format and checksum, one indexed lookup (or the cache), digest, state.

    A malformed key or a bad checksum costs no query. A wrong secret answers `not_found`,
    like an unknown key id, so a caller cannot learn which key ids exist.
    """
    parsed = keys.parse(raw)
    if parsed is None:
        return MALFORMED
    snapshot = _cached_snapshot(parsed.key_id)
    if snapshot is None:
        return NOT_FOUND
    if not snapshot["digest"]:
        return NOT_FOUND  # a pending key: it has no secret yet
    if not verify_digest(parsed.raw, pepper_id=snapshot["pepper_id"], digest=snapshot["digest"]):
        return Verification(valid=False, code="not_found", wrong_secret_of=snapshot)
    return _state(snapshot)


def api_key_state(key_id: str) -> Verification:
    """Return whether the key with this public id is usable now; no secret is involved.

    For access tokens exchanged for a key (RFC 8693), which live only as long as the key does:
    the same cached snapshot as `api_key_verify` (dropped by every change), else one query.
    """
    snapshot = _cached_snapshot(key_id) if isinstance(key_id, str) and key_id else None
    if snapshot is None or not snapshot["digest"]:
        return NOT_FOUND
    return _state(snapshot)


def _cached_snapshot(key_id: str) -> dict[str, Any] | None:
    """Return the verification snapshot of a key id from the cache, else from one indexed query."""
    snapshot = None
    try:
        snapshot = hotcache.get(_cache_key(key_id), shared=True)  # read-only from here on
    except Exception:
        logger.warning("API key cache unavailable; verifying against the database", exc_info=True)
    if snapshot is not None:
        return snapshot
    snapshot = _snapshot_from_database(key_id)
    if snapshot is None:
        return None
    try:
        cache.add(_cache_key(key_id), snapshot, cache_seconds())
    except Exception:
        logger.warning("Could not cache API key %s", key_id, exc_info=True)
    return snapshot


#: The verification query, one per database vendor, written once: building it through the ORM
#: on every call cost more than running it (docs/performance.md). Same columns as `_snapshot`.
_SNAPSHOT_SQL: dict[str, str] = {}
_SNAPSHOT_FIELDS = (
    "pk",
    "key_id",
    "pepper_id",
    "digest",
    "status",
    "expires_at",
    "organization_id",
    "organization_slug",
    "owner_id",
    "owner_email",
    "owner_role",
    "scopes",
    "environment",
    "name",
    "allowed_ips",
    "rate_limit",
)


def _snapshot_sql() -> str:
    sql = _SNAPSHOT_SQL.get(connection.vendor)
    if sql is None:
        quote = connection.ops.quote_name
        key, org, owner, member = ApiKey._meta, Organization._meta, User._meta, Membership._meta

        def column(meta, alias: str, field: str) -> str:
            return f"{alias}.{quote(meta.get_field(field).column)}"

        selected = [
            *(column(key, "k", f) for f in ("id", "key_id", "pepper_id", "digest", "status", "expires_at")),
            column(key, "k", "organization"),
            column(org, "o", "slug"),
            column(key, "k", "owner"),
            column(owner, "u", "email"),
            column(member, "m", "role"),
            *(column(key, "k", f) for f in ("scopes", "environment", "name", "allowed_ips", "rate_limit")),
        ]
        org_pk, owner_pk = f"o.{quote(org.pk.column)}", f"u.{quote(owner.pk.column)}"
        # Identifiers only, from the models' metadata and quoted; the key id is a bound parameter.
        sql = _SNAPSHOT_SQL[connection.vendor] = (
            f"SELECT {', '.join(selected)} FROM {quote(key.db_table)} k"  # noqa: S608
            f" INNER JOIN {quote(org.db_table)} o ON {org_pk} = {column(key, 'k', 'organization')}"
            f" LEFT OUTER JOIN {quote(owner.db_table)} u ON {owner_pk} = {column(key, 'k', 'owner')}"
            # The owner's current role in the key's organisation (none once they have left).
            f" LEFT OUTER JOIN {quote(member.db_table)} m ON {column(member, 'm', 'user')} = "
            f"{column(key, 'k', 'owner')} AND {column(member, 'm', 'organization')} = "
            f"{column(key, 'k', 'organization')}"
            f" WHERE {column(key, 'k', 'key_id')} = %s"
        )
    return sql


def _snapshot_from_database(key_id: str) -> dict[str, Any] | None:
    """Return the snapshot of a key id from one indexed query (key_id is unique), or None."""
    with connection.cursor() as cursor:
        cursor.execute(_snapshot_sql(), [key_id])
        row = cursor.fetchone()
    if row is None:
        return None
    snapshot = dict(zip(_SNAPSHOT_FIELDS, row, strict=True))
    expires_at = snapshot["expires_at"]
    if isinstance(expires_at, str):  # SQLite without declared-type conversion
        expires_at = datetime.fromisoformat(expires_at)
    if expires_at is not None and timezone.is_naive(expires_at):  # SQLite stores UTC without an offset
        expires_at = timezone.make_aware(expires_at, connection.timezone)
    snapshot["expires_at"] = expires_at.timestamp() if expires_at else None
    scopes = snapshot["scopes"]
    if isinstance(scopes, str | bytes):  # JSON text: Django reads PostgreSQL's jsonb as text too
        scopes = json.loads(scopes)
    snapshot["scopes"] = list(scopes or [])
    for name in ("allowed_ips", "rate_limit"):
        if isinstance(snapshot[name], str | bytes):
            snapshot[name] = json.loads(snapshot[name])
    snapshot["allowed_ips"] = list(snapshot["allowed_ips"] or [])
    snapshot["rate_limit"] = snapshot["rate_limit"] or None
    if not snapshot["owner_id"]:
        snapshot["owner_email"] = None
    return snapshot


def _state(snapshot: dict[str, Any]) -> Verification:
    if snapshot["status"] != ApiKeyStatus.ACTIVE:
        # Suspended is answered exactly like revoked: callers need not learn why a key stopped.
        return Verification(valid=False, code="revoked", key=snapshot)
    if snapshot["expires_at"] is not None and snapshot["expires_at"] <= timezone.now().timestamp():
        return Verification(valid=False, code="expired", key=snapshot)
    return Verification(valid=True, key=snapshot)


# --- last use -------------------------------------------------------------------------------

_pending = threading.local()


def api_key_record_use(verification: Verification, *, ip: str | None = None) -> None:
    """Remember that a valid key was used, writing `last_used_at` at most once a minute per key.

    Inside a request the write happens after the response has been sent, so it can neither
    slow nor fail the request; any database or cache error is logged and dropped.
    """
    if not verification.valid or not verification.key:
        return
    if hotcache.present(_USED_PREFIX + verification.key["key_id"]):
        return  # the batched read of this request saw the marker: not due, no round trip
    try:
        due = cache.add(_USED_PREFIX + verification.key["key_id"], 1, LAST_USED_INTERVAL_SECONDS)
    except Exception:
        logger.warning("API key cache unavailable; skipping the last-used update", exc_info=True)
        return
    if not due:
        return
    touch = (verification.key["pk"], timezone.now(), ip)
    if current_request_context() is not None:
        if not hasattr(_pending, "touches"):
            _pending.touches = []
        _pending.touches.append(touch)
    else:
        _write_touches([touch])


def _write_touches(touches: list[tuple[int, datetime, str | None]]) -> None:
    for pk, when, ip in touches:
        fields: dict[str, Any] = {"last_used_at": when}
        if ip:
            fields["last_used_ip"] = ip
        try:
            ApiKey.objects.filter(pk=pk).update(**fields)
        except Exception:
            logger.warning("Could not record the last use of API key %s", pk, exc_info=True)


def _flush_touches(**_kwargs: Any) -> None:
    touches = getattr(_pending, "touches", None)
    if touches:
        _pending.touches = []
        _write_touches(touches)


request_finished.connect(_flush_touches, dispatch_uid="credentials.api_key.flush_touches")


# --- governance adapter -----------------------------------------------------------------------


def _scopes_for(ids: Iterable[int]) -> dict[int, list[str]]:
    return {
        pk: sorted(scopes)
        for pk, scopes in ApiKey.objects.filter(pk__in=list(ids)).values_list("pk", "scopes")
    }


def _set_scopes(api_key: ApiKey, names: list[str]) -> None:
    api_key.scopes = _check_scopes(names)
    api_key.save(update_fields=["scopes", "updated_at"])


def _revoke(api_key: ApiKey, actor: User | None, reason: str) -> ApiKey:
    return api_key_revoke(api_key=api_key, actor=actor, reason=reason, via="governance")


def _detail_path(org_slug: str, pk: int, ref: str) -> str:
    from django.urls import reverse

    return reverse("org-api-key-detail", kwargs={"org_slug": org_slug, "key_id": ref})


def api_key_match_secret(raw: str):
    """Return the `SecretMatch` of a presented key whose digest matches, whatever its status, else None.

    For leak reports: the same checks as `api_key_verify` (format and checksum offline, one
    indexed lookup by key id, constant-time digest compare) without the cache or the
    verification metrics, and without judging status or expiry.
    """
    from credentials.governance.registry import SecretMatch

    parsed = keys.parse(raw)
    if parsed is None:
        return None
    row = (
        ApiKey.objects.filter(key_id=parsed.key_id)
        .order_by()
        .values("pk", "digest", "pepper_id", "environment", "key_id", "last4", "status", "expires_at")
        .first()
    )
    if row is None or not row["digest"]:
        return None
    if not verify_digest(parsed.raw, pepper_id=row["pepper_id"], digest=row["digest"]):
        return None
    expired = row["expires_at"] is not None and row["expires_at"] <= timezone.now()
    return SecretMatch(
        object_id=row["pk"],
        secret_hint=f"{keys.display_prefix(row['environment'], row['key_id'])}…{row['last4']}",
        secret_live=row["status"] == ApiKeyStatus.ACTIVE and not expired,
    )


def _people_behind(principal) -> set[int]:
    """Return the owner and creator of the API key a principal presented (or a token exchanged for it)."""
    key_id = principal.credential_id if principal.credential_type == "api_key" else None
    key_id = key_id or principal.extra.get("api_key_id")
    if not key_id:
        return set()
    row = ApiKey.objects.filter(key_id=key_id).values_list("owner_id", "created_by_id").first()
    return set(row or ())


def governed_kind():
    """Return the governance description of API keys (registered in CredentialsConfig.ready)."""
    from credentials.governance.registry import STANDING, GovernedKind
    from credentials.selectors import api_keys_inventory

    return GovernedKind(
        key="api_key",
        label="API key",
        lifecycle=STANDING,
        audit_prefix="credentials.api_key",
        model=ApiKey,
        touch_field="updated_at",
        ref_attr="key_id",
        url_kwarg="key_id",
        lookup_field="key_id",
        url_name="org-api-key",
        issue_url_name="org-api-key-issue",
        inventory_queryset=api_keys_inventory,
        scopes_of=lambda api_key: list(api_key.scopes),
        scopes_for=_scopes_for,
        set_scopes=_set_scopes,
        issue_secret=_issue_first_secret,
        revoke=_revoke,
        changed=_publish,
        detail_path=_detail_path,
        filter_scope=lambda qs, scope: qs.filter(scopes__icontains=f'"{scope}"'),
        match_secret=api_key_match_secret,
        people_behind=_people_behind,
        check_new=lambda api_key, lifetime_days: _check_kind_policy(
            api_key.organization, api_key.environment, lifetime_days
        ),
        policy_violations=_policy_violations,
        moved_links=_moved_links,
    )
