"""Reads for API keys; every customer-facing query starts from an organisation."""

from __future__ import annotations

from django.db.models import Case, F, Q, QuerySet, When
from django.utils import timezone

from credentials.api_keys import keys
from credentials.api_keys.models import ApiKey
from credentials.governance.models import CredentialState
from credentials.governance.selectors import kind_inventory
from portal.models import AuditEvent, Organization
from portal.selectors import audit_events_for


def api_keys_for(organization: Organization) -> QuerySet[ApiKey]:
    """Return the organisation's API keys with owner and creator, newest first."""
    return (
        ApiKey.objects.filter(organization=organization)
        .select_related("organization", "owner", "created_by", "replaces")
        .order_by("-created_at", "-id")
    )


def api_key_by_ref(given: str) -> ApiKey | None:
    """Return the key a person named on the command line (its id or display prefix), of any organisation."""
    return ApiKey.objects.select_related("organization").filter(key_id=keys.key_id_of(given)).first()


def api_keys_filtered(
    organization: Organization,
    *,
    search: str = "",
    status: str = "",
    environment: str = "",
    owner_id: int | None = None,
) -> QuerySet[ApiKey]:
    """Return the organisation's keys matching a search (name, key id, owner email) and filters."""
    keys = api_keys_for(organization)
    if search:
        matches = Q(name__icontains=search) | Q(owner__email__icontains=search)
        # A key id, or a display prefix `ipk_live_<key id…>`: its last part, when there is one
        # (`…_` would match every key).
        key_id_part = search.split("_")[-1]
        if key_id_part:
            matches |= Q(key_id__startswith=key_id_part)
        keys = keys.filter(matches)
    now = timezone.now()
    if status == CredentialState.ACTIVE:
        keys = keys.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), status=CredentialState.ACTIVE)
    elif status == CredentialState.EXPIRED:
        keys = keys.filter(status=CredentialState.ACTIVE, expires_at__lte=now)
    elif status in CredentialState.values:
        keys = keys.filter(status=status)
    elif status:
        keys = keys.none()  # an unknown status matches nothing, never everything
    if environment:
        keys = keys.filter(environment=environment)
    if owner_id:
        keys = keys.filter(owner_id=owner_id)
    return keys


def active_api_key_count(organization: Organization) -> int:
    """Return how many of the organisation's keys work right now."""
    return api_keys_filtered(organization, status=CredentialState.ACTIVE).count()


def api_key_chain(api_key: ApiKey, *, limit: int = 20) -> list[ApiKey]:
    """Return the rotation chain through `api_key`, oldest first (bounded, one query per link)."""
    chain = [api_key]
    current = api_key
    while current.replaces_id and len(chain) < limit:
        current = ApiKey.objects.select_related("owner").get(pk=current.replaces_id)
        chain.insert(0, current)
    current = api_key
    while len(chain) < limit:
        current = ApiKey.objects.select_related("owner").filter(replaces=current).first()
        if current is None:
            break
        chain.append(current)
    return chain


def api_key_events(organization: Organization, api_key: ApiKey) -> QuerySet[AuditEvent]:
    """Return the audit events about a key, newest first, including the rotation that issued it.

    A rotation is recorded once, on the key it replaced; without it, a successor's history would
    start empty although the rotation is how it came to be.
    """
    label = api_key._meta.label_lower
    about_key = Q(target_type=label, target_id=str(api_key.pk))
    if api_key.replaces_id:
        about_key |= Q(
            target_type=label, target_id=str(api_key.replaces_id), action="credentials.api_key.rotated"
        )
    return audit_events_for(organization).filter(about_key)


def api_keys_inventory(organization: Organization | None) -> QuerySet[ApiKey]:
    """Return keys annotated with the inventory's common columns (all organisations for None)."""
    return kind_inventory(
        ApiKey,
        organization,
        kind="api_key",
        ref="key_id",
        created="created_at",
        expires=F("expires_at"),
        last_used=F("last_used_at"),
        # The M2M application it was moved to, if any (the reverse of M2MApplication.moved_from_key);
        # a denied or withdrawn move never happened (tokens.clients.moves).
        moved=Case(
            When(moved_to_application__status=CredentialState.DENIED, then=None),
            default=F("moved_to_application__pk"),
        ),
        # A rotated key expires at the end of its overlap on purpose: no expiry notice for it.
        superseded=Q(rotated_at__isnull=False),
    )
