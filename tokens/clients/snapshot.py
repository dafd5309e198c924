"""The shared per-client snapshot: client authentication without SQL on a warm token request.

What `tokens.protocol.oauth._LiveSecretsQuery` reads for a client id (its live secrets, the
application, its organisation, the owner's current role and the allowed scopes' names) is
kept in the shared cache (Redis) under the client id and read in the token request's one
cache round trip (`hot_keys`, beside the failure and issuance counters), so a warm token
request makes no SQL statement. docs/performance.md, "Third pass: the client snapshot".

Only with a shared cache (`enabled`): a per-process cache cannot be invalidated on the other
servers, and a secret revoked on one server must be refused by all of them at once
(docs/operations.md). Without one, every token request runs the query, as before.

Correctness:

- Every change that could alter the outcome of authentication or issuance marks the
  snapshot of each client concerned as invalidated once the change commits (`forget`):
  the receivers below see saves, deletions, scope changes and queryset `update()`s
  (`tokens.models.client_rows_updated`) of applications, secrets, scopes, memberships and
  organisations, whichever service, admin action, REST view or command made them.
- The mark is a short-lived tombstone written with `set`, and readers only ever `add`: a
  reader that queried the database before the change committed cannot put its stale rows
  back after the mark. A tombstone reads as a miss (the query runs).
- Secret expiry by time is checked against now at use, as the query does.
- The key carries a version made of the snapshot format and the columns read, so a deploy
  that changes the shape never reads an entry written by the previous one; entries live
  `SNAPSHOT_SECONDS` at most, as a backstop.
- A cache that fails reads as a miss: the database decides (fail safe, never fail open).
- The digests held are the keyed HMACs the database holds; nothing here logs them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from portal.infra import hotcache

log = logging.getLogger(__name__)

#: How long a snapshot may live: a backstop only (every change drops it).
SNAPSHOT_SECONDS = 300
#: How long the tombstone `forget` writes lives: readers cannot store a snapshot meanwhile, so
#: one that read the database before the change committed cannot store what it read.
TOMBSTONE_SECONDS = 30
#: Bump when the stored shape changes without a column change (the columns are in the key too).
FORMAT = 1

_TOMBSTONE = "forgotten"
_prefix: str | None = None


def enabled() -> bool:
    """Return whether token requests use the snapshot: only with a cache shared by every server.

    The backend decides (Redis or memcached: on; the per-process default: off, since other
    servers could not drop a snapshot this process keeps); `PORTAL_CLIENT_SNAPSHOT=False`
    switches it off. No setting switches it on over a per-process cache.
    """
    if getattr(settings, "PORTAL_CLIENT_SNAPSHOT", None) is False:
        return False
    backend = settings.CACHES["default"]["BACKEND"].lower()
    return "redis" in backend or "memcached" in backend


def snapshot_columns() -> tuple:
    """Return the columns a snapshot holds, per model (part of its key: a new shape, a new key)."""
    from portal.models import Organization
    from tokens.models import ClientSecret, M2MApplication

    return tuple(
        (model._meta.label, tuple(field.attname for field in model._meta.concrete_fields))
        for model in (ClientSecret, M2MApplication, Organization)
    )


def _key_prefix() -> str:
    global _prefix  # noqa: PLW0603  computed once from the models' metadata
    if _prefix is None:
        from django.db import connection

        # Raw column values as the database driver returns them: the vendor is part of the shape.
        shape = repr((FORMAT, connection.vendor, snapshot_columns())).encode()
        _prefix = f"tokens:client-snapshot:{hashlib.sha256(shape).hexdigest()[:12]}:"
    return _prefix


def cache_key(client_id: str) -> str:
    """Return the cache key of a client id's snapshot (the id hashed: it comes from the request)."""
    return _key_prefix() + hashlib.sha256(client_id.encode()).hexdigest()[:32]


def hot_keys(client_id: str) -> list[str]:
    """Return the snapshot key of a claimed client id for the token request's one read, if in use."""
    if not client_id or "\x00" in client_id or len(client_id) > 255 or not enabled():
        return []
    return [cache_key(client_id)]


def read(client_id: str) -> Any:
    """Return the stored snapshot of `client_id`, or None (absent, forgotten, or the cache failed)."""
    try:
        value = hotcache.get(cache_key(client_id), shared=True)
    except Exception:  # noqa: BLE001  a cache that fails is a miss: the database decides
        log.warning("client snapshot cache unavailable; authenticating against the database", exc_info=True)
        return None
    return value if isinstance(value, tuple) else None


def store(client_id: str, snapshot: tuple) -> None:
    """Store a snapshot read from the database, unless one (or a tombstone) is there already."""
    key = cache_key(client_id)
    if hotcache.present(key):
        return  # the request's batch saw a tombstone there: `add` would not store
    try:
        cache.add(key, snapshot, SNAPSHOT_SECONDS)
    except Exception:  # noqa: BLE001  not stored: the next request queries again
        log.warning("could not cache a client snapshot", exc_info=True)


def forget(client_ids: Iterable[str]) -> None:
    """Invalidate the snapshots of `client_ids` once the current transaction commits (now outside one)."""
    ids = sorted({client_id for client_id in client_ids if client_id})
    if ids:
        transaction.on_commit(lambda: _tombstone(ids))


def _tombstone(client_ids: list[str]) -> None:
    keys = {cache_key(client_id): _TOMBSTONE for client_id in client_ids}
    # Past the back-off of `ResilientRedisCache`: a skipped write would leave other servers
    # reading what it meant to replace. Refused, the keys are deleted before this process
    # uses Redis again.
    if not hotcache.replace(keys, TOMBSTONE_SECONDS):
        log.error("could not invalidate %d client snapshot(s)", len(keys))


# --- every writer: the receivers -------------------------------------------------------------


def _application_client_ids(**filters: Any) -> list[str]:
    from tokens.models import M2MApplication

    return list(M2MApplication.objects.filter(**filters).values_list("client_id", flat=True))


def _on_application_pre_save(sender, instance, update_fields=None, **kwargs) -> None:
    # A client id edited (the admin allows it) must drop the snapshot of the old one too.
    if instance.pk is not None and (update_fields is None or "client_id" in update_fields):
        forget(_application_client_ids(pk=instance.pk))


def _on_application_changed(sender, instance, **kwargs) -> None:
    forget([instance.client_id])


def _on_secret_changed(sender, instance, update_fields=None, **kwargs) -> None:
    if update_fields is not None and set(update_fields) <= {"last_used_at"}:
        return  # decides nothing (and is written once a minute by authentication itself)
    application = instance._meta.get_field("application")
    if application.is_cached(instance):
        forget([instance.application.client_id])
    else:
        forget(_application_client_ids(pk=instance.application_id))


def _on_rows_updated(sender, client_ids, **kwargs) -> None:
    forget(client_ids)


def _on_scopes_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    from tokens.models import M2MApplication

    if not reverse:
        if action in ("post_add", "post_remove", "post_clear"):
            forget([instance.client_id])
    elif action in ("post_add", "post_remove") and pk_set:
        forget(_application_client_ids(pk__in=pk_set))
    elif action == "pre_clear":  # scope.m2m_applications.clear(): the applications are known only now
        forget(M2MApplication.objects.filter(allowed_scopes=instance).values_list("client_id", flat=True))


def _on_scope_deleted(sender, instance, **kwargs) -> None:
    # Before the deletion: its links go with it, and a cascade sends no m2m_changed (nor any
    # signal for the auto-created link rows).
    forget(_application_client_ids(allowed_scopes=instance))


def _on_scope_saved(sender, instance, created=False, **kwargs) -> None:
    if not created:  # renamed: the snapshots hold scope names
        forget(_application_client_ids(allowed_scopes=instance))


def _on_membership_changed(sender, instance, **kwargs) -> None:
    # The owner's current role bounds the scopes their applications' tokens get.
    forget(_application_client_ids(owner_id=instance.user_id, organization_id=instance.organization_id))


def _on_organization_changed(sender, instance, **kwargs) -> None:
    forget(_application_client_ids(organization_id=instance.pk))


def connect_receivers() -> None:
    """Connect the invalidation receivers (`tokens.apps.TokensConfig.ready`)."""
    from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

    from credentials.models import Scope
    from portal.models import Membership, Organization
    from tokens.models import ClientSecret, M2MApplication, client_rows_updated

    uid = "tokens.client_snapshot."
    through = M2MApplication.allowed_scopes.through
    pre_save.connect(_on_application_pre_save, sender=M2MApplication, dispatch_uid=uid + "app-pre")
    for signal, name in ((post_save, "save"), (post_delete, "delete")):
        signal.connect(_on_application_changed, sender=M2MApplication, dispatch_uid=f"{uid}app-{name}")
        signal.connect(_on_secret_changed, sender=ClientSecret, dispatch_uid=f"{uid}secret-{name}")
        signal.connect(_on_membership_changed, sender=Membership, dispatch_uid=f"{uid}member-{name}")
        signal.connect(_on_organization_changed, sender=Organization, dispatch_uid=f"{uid}org-{name}")
    m2m_changed.connect(_on_scopes_changed, sender=through, dispatch_uid=uid + "scopes")
    pre_delete.connect(_on_scope_deleted, sender=Scope, dispatch_uid=uid + "scope-delete")
    post_save.connect(_on_scope_saved, sender=Scope, dispatch_uid=uid + "scope")
    client_rows_updated.connect(_on_rows_updated, dispatch_uid=uid + "update")
