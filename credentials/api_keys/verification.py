"""The API-key verification hot path: format, cached snapshot or one indexed query, digest, state.

Verification does at most one indexed query and none while a short-lived cache entry exists;
`last_used_at` is written at most once a minute per key, after the response, batched with the
process's other last-used writes (`credentials.last_used`). See docs/api-keys.md.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.signals import setting_changed
from django.db import connection, transaction
from django.utils import timezone

from credentials import last_used
from credentials.api_keys import keys
from credentials.api_keys.models import ApiKey
from credentials.governance.models import CredentialState
from portal import authz
from portal.infra import hotcache
from portal.infra.cache import PortalLocMemCache
from portal.infra.crypto import digest_matches, peppers, verify_digest
from portal.infra.metrics import verification_metrics
from portal.models import Membership, Organization, User
from portal.principal import Principal

logger = logging.getLogger(__name__)

#: How often `last_used_at` may be written for one key.
LAST_USED_INTERVAL_SECONDS = 60
_CACHE_PREFIX = "credentials:api_key:v1:"
_USED_PREFIX = "credentials:api_key_used:v1:"


# --- the cache ------------------------------------------------------------------------------


#: The lifetime of a snapshot in a shared cache: a backstop, since every change replaces it.
SHARED_CACHE_SECONDS = 300


def cache_seconds() -> int:
    """Return how long a verification snapshot may be cached.

    A shared cache (Redis) is invalidated by every change (`snapshot_publish`, called by the
    services and by `on_membership_event` for the owner's role), so its lifetime is only a
    backstop, 5 minutes as for the client snapshot (`tokens.clients.snapshot`); a per-process
    cache cannot be invalidated on other servers, so its entries live 1 second.
    """
    configured = getattr(settings, "PORTAL_API_KEY_CACHE_SECONDS", None)
    if configured is not None:
        return int(configured)
    backend = settings.CACHES["default"]["BACKEND"]
    return SHARED_CACHE_SECONDS if "redis" in backend.lower() or "memcached" in backend.lower() else 1


def _cache_key(key_id: str) -> str:
    return _CACHE_PREFIX + key_id


def hot_keys(raw: str) -> list[str]:
    """Return the cache keys verifying and recording the use of `raw` read, for one batched read.

    The authentication class reads them together with its rate-limit counters in one round
    trip (`portal.infra.hotcache`); a malformed key needs none.
    """
    parsed = keys.parse(raw)
    if parsed is None:
        return []
    return [_cache_key(parsed.key_id), _USED_PREFIX + parsed.key_id]


def snapshot_publish(api_key: ApiKey) -> None:
    """Drop the cached snapshot now, and store the fresh one once the change has committed.

    Readers only ever `add`, so a reader holding a pre-change row cannot overwrite the
    fresh snapshot written after commit. Both writes must land (`hotcache.invalidate`,
    `hotcache.replace`): a revocation skipped during Redis's back-off would leave every server
    accepting the key for the snapshot's whole lifetime; one Redis refuses is made before this
    process uses Redis again.
    """
    key = _cache_key(api_key.key_id)
    hotcache.invalidate([key])

    def store() -> None:
        # Read now, after the commit, not from `api_key`: the caller's row may predate another
        # change that committed meanwhile (a key revoked while its owner's demotion refreshed it),
        # and writing that row would undo the change on every server for the snapshot's lifetime.
        # Then read once more: a second writer may have committed, read and stored between this
        # read and this write, so this write was the older one; store again what is there now.
        written = None
        for _attempt in range(_STORE_ATTEMPTS):
            fresh = _fresh_snapshot(api_key.key_id)
            if fresh is None:
                hotcache.invalidate([key])  # the next reader fills it from the database
                return
            if fresh == written:
                return
            hotcache.replace({key: fresh}, cache_seconds())
            written = fresh
        hotcache.invalidate([key])  # still changing: the next reader fills it from the database

    transaction.on_commit(store)


#: How often a change's after-commit store reads and writes while other writers keep committing.
_STORE_ATTEMPTS = 3


def _fresh_snapshot(key_id: str) -> dict[str, Any] | None:
    """Return the key's snapshot as committed now, or None (no such key, or the query failed)."""
    try:
        return _snapshot_from_database(key_id)
    except Exception:
        logger.warning("Could not build the fresh snapshot of API key %s", key_id, exc_info=True)
        return None


def on_organization_saved(
    sender, instance: Organization, created: bool = False, update_fields=None, **kwargs: Any
) -> None:
    """Drop the cached snapshots of an organisation's keys, now and once the change commits.

    A snapshot carries the organisation's slug, which names it in URLs and in `whoami`: after a
    rename (the admin allows it) the keys must act under the new one at once, as a token request
    does (`tokens.clients.snapshot`). A save that names its fields and not the slug (the MFA
    policy) changes nothing a snapshot holds. Connected in `CredentialsConfig.ready`.
    """
    if created or (update_fields is not None and "slug" not in update_fields):
        return

    def drop() -> None:
        key_ids = ApiKey.objects.filter(organization_id=instance.pk).values_list("key_id", flat=True)
        keys = [_cache_key(key_id) for key_id in key_ids.iterator()]
        for start in range(0, len(keys), _DROP_CHUNK):
            hotcache.invalidate(keys[start : start + _DROP_CHUNK])

    drop()
    transaction.on_commit(drop)


#: Snapshots dropped per cache call when a whole organisation's keys are.
_DROP_CHUNK = 1000


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


# --- the per-process memo of valid keys (only in front of a per-process cache) ---------------
#
# Without Redis the snapshot cache is this process's own LocMem (entries live 1 s, the
# revocation bound of docs/operations.md). A hit there still paid for the cache proxy, key
# building, the LocMem lookup, the key's format and CRC check and a fresh Verification. The
# memo remembers, per key id, the LocMem entry a valid verification came from (a stamp: that
# entry's very bytes), the key's pepper and digest, and the Verification it produced. A
# later call with the same key id uses it only while LocMem still holds that very entry
# (`PortalLocMemCache.holds`): any `set`, `delete` (every change to a key drops it),
# `clear` or the entry's expiry ends it at once, so the memo answers nothing LocMem would
# not. The presented key is still checked every time: its HMAC under the pepper, compared in
# constant time with the stored digest — equal only for the very key that was issued, whose
# format and checksum are therefore right, so the CRC check can be skipped. A wrong secret, a
# malformed key or an expired key falls through to the full path below and is answered
# exactly as before. No raw key is kept: only what the snapshot holds (the digest, as the
# database does). With Redis the memo stays empty: there a change must reach every server
# at once (docs/operations.md), which a per-process layer cannot promise.

#: Where the memo finds the key id in a presented key: after `ipk_live_` or `ipk_test_`. (Were an
#: environment's name of another length, its keys would only miss the memo: the HMAC decides.)
_KEY_ID_START = len(keys.display_prefix("live", ""))
_KEY_ID_END = _KEY_ID_START + keys.KEY_ID_LENGTH

#: key id -> (LocMem's `holds`, the entry's stamp, pepper, digest, expires_at, the valid Verification).
_memo: dict[str, tuple[Any, Any, bytes, str, float | None, Verification]] = {}
_MEMO_MAX = 4096


def _memo_verify(raw: str) -> Verification | None:
    """Return the memo's Verification if `raw` is the very key it was made for, still valid; else None."""
    if type(raw) is not str or len(raw) != keys.KEY_LENGTH:
        return None
    entry = _memo.get(raw[_KEY_ID_START:_KEY_ID_END])
    if entry is None:
        return None
    holds, stamp, pepper, digest, expires_at, verification = entry
    if not holds(stamp) or not digest_matches(pepper, raw, digest):
        return None
    if expires_at is not None and expires_at <= timezone.now().timestamp():
        return None
    return verification


def _memo_fill(key_id: str) -> None:
    """Remember the valid key `key_id` against the per-process cache entry it is verified from now."""
    backend = caches["default"]
    if not isinstance(backend, PortalLocMemCache):
        return  # a shared cache: no per-process layer (see above)
    stamped = backend.get_stamped(_cache_key(key_id))
    if stamped is None:
        return
    snapshot, stamp = stamped
    pepper = peppers()[1].get(snapshot["pepper_id"])
    if pepper is None or not snapshot["digest"] or _state(snapshot).valid is not True:
        return
    if len(_memo) >= _MEMO_MAX:
        _memo.clear()
    verification = Verification(valid=True, key=snapshot)
    _memo[key_id] = (backend.holds, stamp, pepper, snapshot["digest"], snapshot["expires_at"], verification)


def _memo_forget(**_kwargs: Any) -> None:
    # Tests swap the cache backend or the peppers with override_settings: start afresh.
    _memo.clear()


setting_changed.connect(_memo_forget, dispatch_uid="credentials.api_key.memo_forget")


@verification_metrics("api_key", outcome_of=lambda v: "valid" if v.valid else v.code)
def api_key_verify(raw: str) -> Verification:
    """Check a presented key: format and checksum, one indexed lookup (or the cache), digest, state.

    A malformed key or a bad checksum costs no query. A wrong secret answers `not_found`,
    like an unknown key id, so a caller cannot learn which key ids exist.
    """
    memoized = _memo_verify(raw)
    if memoized is not None:
        return memoized
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
    verification = _state(snapshot)
    if verification.valid:
        _memo_fill(parsed.key_id)
    return verification


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
    # What the rate limit is counted under (credentials.policy.api_key_budget). A snapshot cached
    # before it was added has none: its key's own id stands in until the entry is replaced.
    "lineage",
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
            *(
                column(key, "k", f)
                for f in ("scopes", "environment", "name", "allowed_ips", "rate_limit", "lineage")
            ),
        ]
        org_pk, owner_pk = f"o.{quote(org.pk.column)}", f"u.{quote(owner.pk.column)}"
        # Identifiers only, from the models' metadata and quoted; the key id is a bound parameter.
        sql = _SNAPSHOT_SQL[connection.vendor] = (
            f"SELECT {', '.join(selected)} FROM {quote(key.db_table)} k"  # noqa: S608
            f" INNER JOIN {quote(org.db_table)} o ON {org_pk} = {column(key, 'k', 'organization')}"
            f" LEFT OUTER JOIN {quote(owner.db_table)} u ON {owner_pk} = {column(key, 'k', 'owner')}"
            # The owner's current role in the key's organisation: none once they have left, or
            # once their account is deactivated (portal.selectors.authority_memberships).
            f" LEFT OUTER JOIN {quote(member.db_table)} m ON {column(member, 'm', 'user')} = "
            f"{column(key, 'k', 'owner')} AND {column(member, 'm', 'organization')} = "
            f"{column(key, 'k', 'organization')} AND {column(owner, 'u', 'is_active')}"
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
    if snapshot["status"] != CredentialState.ACTIVE:
        # Suspended is answered exactly like revoked: callers need not learn why a key stopped.
        return Verification(valid=False, code="revoked", key=snapshot)
    if snapshot["expires_at"] is not None and snapshot["expires_at"] <= timezone.now().timestamp():
        return Verification(valid=False, code="expired", key=snapshot)
    return Verification(valid=True, key=snapshot)


# --- last use ---------------------------------------------------------------------------


def api_key_record_use(verification: Verification, *, ip: str | None = None) -> None:
    """Remember that a valid key was used, writing `last_used_at` at most once a minute per key.

    Inside a request the use is held with the process's other last uses and written after
    the response (`credentials.last_used`: one UPDATE per flush), so it can neither slow nor
    fail the request; any database or cache error is logged and dropped. Outside a request
    it is written at once. Once a minute per key per cache: the flush `add`s every held key's
    marker in one round trip and writes only the keys whose marker it added.
    """
    if not verification.valid or not verification.key:
        return
    key = verification.key
    if hotcache.present(_USED_PREFIX + key["key_id"]):
        return  # the batched read of this request saw the marker: written less than a minute ago
    _touches.add(key["pk"], timezone.now(), ip or None, key["key_id"])


def _write_touches(touches: dict[int, tuple[datetime, str | None, str]]) -> None:
    """Write `last_used_at` (and `last_used_ip`) of each key whose marker this adds: one statement.

    The markers are added in one round trip (`hotcache.add_many`); a key whose marker is
    there already was written less than a minute ago (by this server or another). Without an
    answer from Redis every key is written.
    """
    markers = {_USED_PREFIX + key_id: pk for pk, (_when, _ip, key_id) in touches.items()}
    added = hotcache.add_many(markers, 1, LAST_USED_INTERVAL_SECONDS, backend=cache)
    # Redis did not answer: write every held use (as the M2M path does) rather than none, or a
    # key used throughout an outage would look unused (a cut-over would revoke it).
    due = set(markers.values()) if added is None else {markers[marker] for marker in added}
    rows = {pk: (when, ip) for pk, (when, ip, _key_id) in touches.items() if pk in due}
    last_used.update_rows(ApiKey, ("last_used_at", "last_used_ip"), rows)


_touches = last_used.Batch("API keys", _write_touches)
