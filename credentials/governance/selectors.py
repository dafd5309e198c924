"""Governance reads: the one inventory of both kinds, requests and their history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, models
from django.db.models import CharField, F, Q, QuerySet, Value
from django.utils import timezone

from credentials.governance import inventory_usage
from credentials.governance.models import CredentialRequest, CredentialStatus, RequestState
from credentials.governance.registry import GovernedKind, all_kinds, get_kind, kind_of
from credentials.leaks.models import LeakReport
from credentials.lifetimes import EXPIRING_WITHIN
from portal.models import Organization

UNUSED_FOR = timedelta(days=30)

#: The columns every kind's inventory queryset provides, in this order (the UNION needs it).
KIND_COLUMNS = (
    "id",
    "name",
    "status",
    "owner_id",
    "organization_id",
    "review_due_at",
    "orphaned_at",
    "suspended_at",
    "suspension_reason",
    "row_kind",
    "row_ref",
    "row_owner_email",
    "row_created",
    "row_expires",
    "row_last_used",
    "policy_flagged_at",
    "row_moved",
    "row_superseded",
)
#: What the inventory shows: the kind's columns and the usage of the last 30 days
#: (`inventory_usage.with_requests_30d` annotates it).
COLUMNS = (*KIND_COLUMNS, "row_requests_30d")


def kind_inventory(
    model: type[models.Model],
    organization: Organization | None,
    *,
    kind: str,
    ref: str,
    created: str,
    expires: Any,
    last_used: Any,
    moved: Any,
    superseded: Any = None,
) -> QuerySet:
    """Return a kind's rows (one organisation's, or all for None) with the inventory's `row_*` columns.

    A kind's `inventory_queryset` says where each column comes from: `ref` and `created` are
    field names, the others expressions; the owner's email is read alike for every kind, and a
    row is not superseded unless the kind says when.
    """
    rows = model.objects.all() if organization is None else model.objects.filter(organization=organization)
    return rows.annotate(
        row_kind=Value(kind, output_field=CharField()),
        row_ref=F(ref),
        row_moved=moved,
        row_owner_email=F("owner__email"),
        row_created=F(created),
        row_expires=expires,
        row_last_used=last_used,
        row_superseded=Value(False) if superseded is None else superseded,
    )


FLAGS = ("pending", "orphaned", "review_overdue", "expiring", "unused", "suspended", "against_policy")
FLAG_LABELS = {
    "pending": "Pending",
    "orphaned": "Orphaned",
    "review_overdue": "Review overdue",
    "expiring": "Expires within 14 days",
    "unused": "Unused for 30+ days",
    "suspended": "Suspended",
    "against_policy": "Against the policy (still works)",
}
STATUSES = ("pending", "active", "expired", "suspended", "revoked", "denied")


@dataclass(frozen=True)
class InventoryFilters:
    """What the inventory page, CSV export and API filter on."""

    kind: str = ""
    status: str = ""
    owner_id: int | None = None
    flag: str = ""
    search: str = ""
    scope: str = ""
    #: One of `inventory_usage.ATTENTION` (the overview's "needs attention" links).
    attention: str = ""
    #: One of `inventory_usage.SORTS`; empty: newest first.
    sort: str = ""

    def order(self) -> tuple:
        """Return the UNION's ordering for this sort."""
        return inventory_usage.SORTS.get(self.sort, ORDER)


def flag_q(flag: str, now: datetime) -> Q:
    """Return the condition for one inventory flag on an annotated inventory queryset."""
    working = Q(status=CredentialStatus.ACTIVE)
    # The flags a row shows judge its worked-out status (`_flags`): an expired key is "expired",
    # not "active", so the filters that speak of working credentials leave it out too.
    not_expired = Q(row_expires__isnull=True) | Q(row_expires__gt=now)
    if flag == "pending":
        return Q(status=CredentialStatus.PENDING)
    if flag == "suspended":
        return Q(status=CredentialStatus.SUSPENDED)
    if flag == "against_policy":
        return Q(policy_flagged_at__isnull=False) & working & not_expired
    if flag == "orphaned":
        return Q(orphaned_at__isnull=False) & (
            Q(status__in=["pending", "suspended"]) | (working & not_expired)
        )
    if flag == "review_overdue":
        # An expired credential (a rotated-away predecessor past its overlap), or one replaced and
        # still in its overlap, needs no review: it carries the date its successor inherited, and
        # reviewing the successor does not clear it (the notices leave it out too).
        return Q(review_due_at__lte=now, row_superseded=False) & (
            Q(status=CredentialStatus.SUSPENDED) | (working & not_expired)
        )
    if flag == "expiring":
        # A rotated key ends with its overlap by design (its successor carries on): not attention.
        return (
            working & Q(row_superseded=False) & Q(row_expires__gt=now, row_expires__lte=now + EXPIRING_WITHIN)
        )
    if flag == "unused":
        return (working & (Q(row_expires__isnull=True) | Q(row_expires__gt=now))) & (
            Q(row_last_used__lt=now - UNUSED_FOR)
            | Q(row_last_used__isnull=True, row_created__lt=now - UNUSED_FOR)
        )
    raise ValueError(flag)


def _status_q(status: str, now: datetime) -> Q:
    not_expired = Q(row_expires__isnull=True) | Q(row_expires__gt=now)
    if status == "active":
        return Q(status="active") & not_expired
    if status == "expired":
        return Q(status="active", row_expires__lte=now)
    return Q(status=status)


def attention_q(kind: GovernedKind, attention: str, now: datetime, spiking: dict[str, set[str]]) -> Q:
    """Return the condition of one "needs attention" item on a kind's annotated inventory queryset."""
    # "pending" here is a request waiting (a new credential or more scopes), wider than the flag.
    if attention == "pending":
        return inventory_usage.pending_q(kind)
    if attention == "denials":
        return inventory_usage.denials_q(kind, spiking)
    return flag_q(attention, now)


def _spiking(organization: Organization | None, filters: InventoryFilters, now: datetime) -> dict:
    # One query, and only when the filter asks for it.
    return inventory_usage.spiking_refs(organization, now) if filters.attention == "denials" else {}


def _filtered(
    kind: GovernedKind,
    organization: Organization | None,
    filters: InventoryFilters,
    now: datetime,
    spiking: dict[str, set[str]] | None = None,
) -> QuerySet:
    qs = inventory_usage.with_requests_30d(kind, kind.inventory_queryset(organization), now)
    if filters.status in STATUSES:
        qs = qs.filter(_status_q(filters.status, now))
    if filters.owner_id:
        qs = qs.filter(owner_id=filters.owner_id)
    if filters.flag in FLAGS:
        qs = qs.filter(flag_q(filters.flag, now))
    if filters.search:
        qs = qs.filter(Q(name__icontains=filters.search) | Q(row_ref__startswith=filters.search))
    if filters.scope:
        qs = kind.filter_scope(qs, filters.scope)
    if filters.attention in inventory_usage.ATTENTION:
        qs = qs.filter(attention_q(kind, filters.attention, now, spiking or {}))
    # The model orderings must go: a UNION part cannot carry its own ORDER BY.
    return qs.order_by().values(*COLUMNS)


def inventory_queryset(
    organization: Organization | None, filters: InventoryFilters | None = None, *, now: datetime | None = None
) -> QuerySet:
    """Return both kinds as one UNION of `.values()` rows, newest first, filtered in the database.

    Ordering, counting and slicing happen in the database, so a page costs the same two
    queries whatever the number of credentials.
    """
    filters = filters or InventoryFilters()
    now = now or timezone.now()
    kinds = [k for k in all_kinds() if not filters.kind or k.key == filters.kind]
    if not kinds:
        kinds = all_kinds()[:1]
        return _filtered(kinds[0], organization, filters, now).none()
    spiking = _spiking(organization, filters, now)
    parts = [_filtered(k, organization, filters, now, spiking) for k in kinds]
    combined = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    return combined.order_by(*filters.order())


#: Newest first; the kind breaks a tie of (created, id) between two kinds' rows (ids are per
#: table), so the page and the CSV, which order the UNION differently, agree on every row.
ORDER = ("-row_created", "-id", "row_kind")


class InventoryList:
    """Both kinds, newest first, for a Paginator: `count()` and slicing run in the database.

    Counting adds up one count per kind. A slice asks each kind for its newest `stop` rows
    (an index scan on `(organization, created)` that computes the annotations of those rows
    only), then orders and slices their UNION — so the first pages stay fast at 100,000
    credentials. Databases that cannot order inside a UNION part (SQLite) order the whole
    UNION instead.
    """

    def __init__(self, parts: list[QuerySet], order: tuple = ORDER):
        self.parts = parts
        self.order = order

    def count(self) -> int:
        return sum(part.count() for part in self.parts)

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[dict[str, Any]]:
        if not isinstance(index, slice) or index.stop is None:
            raise TypeError("InventoryList only supports bounded slices")
        start, stop = index.start or 0, index.stop
        if stop <= start:
            # An empty page (an empty inventory's first page): a zero-length slice would make
            # Django drop that UNION part and reorder a sliced query.
            return []
        parts, order = self.parts, self.order
        if len(parts) == 1:
            return list(parts[0].order_by(*order)[start:stop])
        if connection.features.supports_slicing_ordering_in_compound:
            parts = [part.order_by(*order)[:stop] for part in parts]
        return list(parts[0].union(*parts[1:], all=True).order_by(*order)[start:stop])


def inventory_list(
    organization: Organization, filters: InventoryFilters | None = None, *, now: datetime | None = None
) -> InventoryList:
    """Return the filtered inventory of an organisation, ready for a Paginator."""
    filters = filters or InventoryFilters()
    now = now or timezone.now()
    kinds = [k for k in all_kinds() if not filters.kind or k.key == filters.kind] or all_kinds()
    spiking = _spiking(organization, filters, now)
    return InventoryList([_filtered(k, organization, filters, now, spiking) for k in kinds], filters.order())


@dataclass
class InventoryRow:
    """One credential in the inventory, with its flags worked out."""

    kind: str
    kind_label: str
    lifecycle: str
    id: int
    ref: str
    name: str
    status: str
    owner_email: str | None
    created: datetime
    expires: datetime | None
    last_used: datetime | None
    review_due: datetime | None
    #: Every metered use (all outcomes) in the last 30 days (see inventory_usage).
    requests_30d: int = 0
    scopes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    path: str = ""
    #: The credential of the other kind this one was moved to or from (see docs/choosing.md).
    moved: dict[str, str] | None = None
    #: Replaced by a successor (a rotated API key): while it still works, the page says "Rotated"
    #: where the API and the CSV keep the status `active` (their status filter speaks of it).
    superseded: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the row as JSON-ready data (the API and the CSV use this)."""
        return {
            "kind": self.kind,
            "lifecycle": self.lifecycle,
            "id": self.ref,
            "name": self.name,
            "owner": self.owner_email,
            "status": self.status,
            "scopes": self.scopes,
            "created": self.created.isoformat() if self.created else None,
            "expires": self.expires.isoformat() if self.expires else None,
            "last_used": self.last_used.isoformat() if self.last_used else None,
            "requests_30d": self.requests_30d,
            "review_due": self.review_due.isoformat() if self.review_due else None,
            "flags": self.flags,
            **(
                {f"moved_{self.moved['direction']}": {"kind": self.moved["kind"], "id": self.moved["ref"]}}
                if self.moved
                else {}
            ),
        }


def _flags(values: dict[str, Any], status: str, now: datetime) -> list[str]:
    flags = []
    expires, last_used = values["row_expires"], values["row_last_used"]
    if status == "pending":
        flags.append("pending")
    if values["orphaned_at"] and status in ("pending", "active", "suspended"):
        flags.append("orphaned")
    if (
        values["review_due_at"]
        and values["review_due_at"] <= now
        and status in ("active", "suspended")
        and not values["row_superseded"]
    ):
        flags.append("review_overdue")
    if (
        status == "active"
        and not values["row_superseded"]
        and expires
        and now < expires <= now + EXPIRING_WITHIN
    ):
        flags.append("expiring")
    if status == "active" and (
        (last_used and last_used < now - UNUSED_FOR)
        or (last_used is None and values["row_created"] < now - UNUSED_FOR)
    ):
        flags.append("unused")
    if status == "suspended":
        flags.append("suspended")
    if values["policy_flagged_at"] and status == "active":
        flags.append("against_policy")
    return flags


def _leaked(by_kind: dict[str, list[int]]) -> set[tuple[str, int]]:
    """Return (kind, id) of the rows with a leak report, in one query for the whole page."""
    condition = Q()
    for key, ids in by_kind.items():
        condition |= Q(kind=key, object_id__in=ids)
    if not condition:
        return set()
    return set(LeakReport.objects.filter(condition).values_list("kind", "object_id").distinct())


def _moved(link, org_slug: str) -> dict[str, str] | None:
    if link is None:
        return None
    other = get_kind(link.kind)
    return {
        "direction": link.direction,
        "kind": link.kind,
        "kind_label": other.label,
        "ref": link.ref,
        "name": link.name,
        "path": other.detail_path(org_slug, link.pk, link.ref),
    }


def inventory_rows(
    values_rows: list[dict[str, Any]], *, org_slug: str, now: datetime | None = None
) -> list[InventoryRow]:
    """Turn UNION rows into `InventoryRow`s, fetching scopes with one query per kind."""
    now = now or timezone.now()
    by_kind: dict[str, list[int]] = {}
    for values in values_rows:
        by_kind.setdefault(values["row_kind"], []).append(values["id"])
    scopes = {key: get_kind(key).scopes_for(ids) for key, ids in by_kind.items()}
    # Only rows moved to or from another kind cost a query (one per kind), so most pages pay none.
    moved_ids: dict[str, list[int]] = {}
    for values in values_rows:
        if values["row_moved"] is not None:
            moved_ids.setdefault(values["row_kind"], []).append(values["id"])
    moves = {key: get_kind(key).moved_links(ids) for key, ids in moved_ids.items()}
    leaked = _leaked(by_kind)
    rows = []
    for values in values_rows:
        kind = get_kind(values["row_kind"])
        status = values["status"]
        if status == "active" and values["row_expires"] and values["row_expires"] <= now:
            status = "expired"
        rows.append(
            InventoryRow(
                kind=kind.key,
                kind_label=kind.label,
                lifecycle=kind.lifecycle,
                id=values["id"],
                ref=values["row_ref"],
                name=values["name"],
                status=status,
                owner_email=values["row_owner_email"],
                created=values["row_created"],
                expires=values["row_expires"],
                last_used=values["row_last_used"],
                review_due=values["review_due_at"],
                requests_30d=values["row_requests_30d"] or 0,
                scopes=scopes[kind.key].get(values["id"], []),
                flags=_flags(values, status, now)
                + (["leaked"] if (kind.key, values["id"]) in leaked else []),
                path=kind.detail_path(org_slug, values["id"], values["row_ref"]),
                moved=_moved(moves.get(kind.key, {}).get(values["id"]), org_slug),
                superseded=bool(values["row_superseded"]),
            )
        )
    return rows


def requests_for(organization: Organization) -> QuerySet[CredentialRequest]:
    """Return the organisation's credential requests, newest first."""
    return CredentialRequest.objects.filter(organization=organization).select_related(
        "requester", "decided_by"
    )


def pending_requests_for(organization: Organization) -> QuerySet[CredentialRequest]:
    """Return the requests waiting for a decision, oldest first."""
    return requests_for(organization).filter(state=RequestState.PENDING).order_by("created_at", "id")


def request_credential_refs(items) -> dict[tuple[str, int], str]:
    """Return the public ref of each request's credential, with one query per kind."""
    ids: dict[str, set[int]] = {}
    for item in items:
        ids.setdefault(item.kind, set()).add(item.object_id)
    refs = {}
    for key, pks in ids.items():
        kind = get_kind(key)
        for pk, ref in kind.model.objects.filter(pk__in=pks).values_list("pk", kind.ref_attr):
            refs[(key, pk)] = ref
    return refs


def requests_for_credential(credential) -> QuerySet[CredentialRequest]:
    """Return every request about one credential, newest first (its approval history)."""
    return requests_for(credential.organization).filter(kind=kind_of(credential).key, object_id=credential.pk)
