"""The resource-server catalogue: which audiences applications may choose, and what their tokens may carry.

Staff register the APIs that accept the portal's tokens (`ResourceServer`, in the admin);
organisations choose their applications' audiences from the entries open to them.
`PORTAL_DEFAULT_AUDIENCE`, the portal's own API, is always available and never needs choosing.
Reads and writes of the catalogue live here together, as `tokens.protocol.exchange` keeps its grant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from oauth2_provider.oauth2_validators import is_valid_resource_uri

from credentials.models import Scope
from portal.infra import hotcache
from portal.models import Organization, User
from portal.services.audit import audit_log
from tokens.models import ResourceServer

_CACHE_PREFIX = "tokens:resource-server:"


# Reads


def resource_servers_for(organization: Organization) -> QuerySet[ResourceServer]:
    """Return the audiences the organisation's applications may choose besides the default one."""
    return (
        ResourceServer.objects.available_to(organization)
        .exclude(identifier=settings.PORTAL_DEFAULT_AUDIENCE)
        .order_by("name", "identifier")
    )


def tidy_audiences(audiences: Iterable[str], *, field: str = "audiences") -> list[str]:
    """Return the audiences stripped and deduplicated, without empty ones and the default one
    (always granted); raise ValidationError (on `field`) for one that is not text."""
    cleaned: list[str] = []
    for audience in audiences:
        if not isinstance(audience, str):
            raise ValidationError({field: "Give resource server identifiers (URIs) as text."})
        audience = audience.strip()
        if audience and audience != settings.PORTAL_DEFAULT_AUDIENCE and audience not in cleaned:
            cleaned.append(audience)
    return cleaned


def check_audiences(
    *, organization: Organization, audiences: Iterable[str], field: str = "audiences"
) -> list[str]:
    """Return the audiences stripped and deduplicated, without the default one (always granted).

    Raise ValidationError (on `field`) naming the audiences the organisation may choose when
    one is not an active catalogue entry open to it. Another organisation's own API reads
    exactly like an unknown URI, and is never listed.
    """
    cleaned = tidy_audiences(audiences, field=field)
    if not cleaned:
        return cleaned
    choices = list(resource_servers_for(organization).values_list("identifier", flat=True))
    refused = [audience for audience in cleaned if audience not in choices]
    if refused:
        raise ValidationError(
            {
                field: "Not in the resource server catalogue for this organisation: "
                + ", ".join(refused)
                + ". Choose from: "
                + ", ".join([settings.PORTAL_DEFAULT_AUDIENCE, *choices])
                + " (staff register APIs in the catalogue)."
            }
        )
    return cleaned


@dataclass(frozen=True)
class TokenTerms:
    """What a token for one resource server may carry: `scopes` it accepts (empty: any scope)."""

    scopes: frozenset[str]

    def accepts(self, scope: str) -> bool:
        return not self.scopes or scope in self.scopes


def token_terms(*, audience: str, organization_id: int) -> TokenTerms | None:
    """Return the terms of a token for `audience` naming the organisation, or None if none may be issued.

    The default audience is always available; any other must be an active entry open to the
    organisation. Checked at every issuance from a cached snapshot of the entry (no query on
    the hot path), which every change through the services drops at once.
    """
    entry = _cached_entry(audience)
    default = audience == settings.PORTAL_DEFAULT_AUDIENCE
    if not default and (
        entry is None
        or not entry["active"]
        or (entry["organizations"] and organization_id not in entry["organizations"])
    ):
        return None
    return TokenTerms(scopes=frozenset(entry["scopes"] if entry else ()))


def _cache_key(identifier: str) -> str:
    return _CACHE_PREFIX + hashlib.sha256(identifier.encode()).hexdigest()[:32]


def _cache_seconds() -> int:
    # As for API keys: a shared cache is invalidated by every change; a per-process one cannot
    # be on other servers, so its entries live a second.
    backend = settings.CACHES["default"]["BACKEND"].lower()
    return 30 if "redis" in backend or "memcached" in backend else 1


def hot_keys(audiences: Iterable[str]) -> list[str]:
    """Return the cache keys `token_terms` reads for `audiences`, for one batched read (`hotcache`)."""
    return [_cache_key(audience) for audience in audiences]


def _cached_entry(identifier: str) -> dict | None:
    """Return `{"active", "scopes", "organizations"}` of the entry, or None when there is none (one query)."""
    key = _cache_key(identifier)
    cached = hotcache.get(key)  # from the token request's batched read, when it named this audience
    if cached is not None:
        return cached or None
    rows = list(
        ResourceServer.objects.filter(identifier=identifier).values_list(
            "is_active", "scopes__name", "organizations__id"
        )
    )
    entry = (
        {
            "active": rows[0][0],
            "scopes": sorted({scope for _active, scope, _org in rows if scope}),
            "organizations": sorted({org for _active, _scope, org in rows if org is not None}),
        }
        if rows
        else None
    )
    # Readers only `add`: a reader holding a row from before a change cannot overwrite its drop.
    cache.add(key, entry or {}, _cache_seconds())
    return entry


def _forget(identifier: str) -> None:
    """Drop the cached entry now and once the change has committed; both must land (`hotcache.invalidate`)."""
    hotcache.invalidate([_cache_key(identifier)])
    transaction.on_commit(lambda: hotcache.invalidate([_cache_key(identifier)]))


# Writes


def check_identifier(identifier: str) -> str:
    """Return a new entry's identifier stripped, or raise ValidationError: a URI (RFC 8707), not taken."""
    identifier = identifier.strip()
    if not is_valid_resource_uri(identifier):
        raise ValidationError(
            {"identifier": f"{identifier!r} is not an absolute URI without fragment (RFC 8707)."}
        )
    if ResourceServer.objects.filter(identifier=identifier).exists():
        raise ValidationError({"identifier": "A resource server with this identifier already exists."})
    return identifier


def check_default_stays_open(identifier: str, *, is_active: bool, organizations: list[Organization]) -> None:
    """Refuse to deactivate the default audience or to close it to some organisations."""
    # Every application may always ask for the portal's own API: closing it would break them all.
    if identifier == settings.PORTAL_DEFAULT_AUDIENCE and (not is_active or organizations):
        raise ValidationError(
            "The portal's default audience (PORTAL_DEFAULT_AUDIENCE) stays active and open to every "
            "organisation."
        )


def _description(server: ResourceServer) -> dict:
    return {
        "identifier": server.identifier,
        "name": server.name,
        "description": server.description,
        "scopes": sorted(server.scopes.values_list("name", flat=True)),
        "organizations": sorted(server.organizations.values_list("slug", flat=True)),
        "is_active": server.is_active,
    }


@transaction.atomic
def resource_server_create(
    *,
    identifier: str,
    name: str,
    actor: User | None,
    description: str = "",
    scopes: Iterable[Scope] = (),
    organizations: Iterable[Organization] = (),
    is_active: bool = True,
) -> ResourceServer:
    """Register a resource server (an audience applications may choose) and audit it."""
    identifier = check_identifier(identifier)
    organizations = list(organizations)
    check_default_stays_open(identifier, is_active=is_active, organizations=organizations)
    server = ResourceServer.objects.create(
        identifier=identifier, name=name.strip() or identifier, description=description, is_active=is_active
    )
    server.scopes.set(list(scopes))
    server.organizations.set(organizations)
    _forget(server.identifier)
    audit_log(
        action="tokens.resource_server.created",
        actor=actor,
        organization=None,
        target=server,
        extra=_description(server),
    )
    return server


@transaction.atomic
def resource_server_update(
    *,
    resource_server: ResourceServer,
    actor: User | None,
    name: str,
    description: str,
    scopes: Iterable[Scope],
    organizations: Iterable[Organization],
    is_active: bool,
) -> ResourceServer:
    """Change a resource server (never its identifier: applications name it); audit what changed.

    Narrowing its scopes, deactivating it or closing it to an organisation applies to the
    next token request; tokens already issued live out their (short) lifetime.
    """
    server = ResourceServer.objects.select_for_update().get(pk=resource_server.pk)
    organizations = list(organizations)
    check_default_stays_open(server.identifier, is_active=is_active, organizations=organizations)
    before = _description(server)
    server.name = name.strip() or server.identifier
    server.description = description
    server.is_active = is_active
    server.save(update_fields=["name", "description", "is_active", "updated_at"])
    server.scopes.set(list(scopes))
    server.organizations.set(organizations)
    after = _description(server)
    _forget(server.identifier)
    changes = {key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]}
    if changes:
        audit_log(
            action="tokens.resource_server.updated",
            actor=actor,
            organization=None,
            target=server,
            extra={"identifier": server.identifier, "changes": changes},
        )
    return server
