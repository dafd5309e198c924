"""Reads for M2M applications, their secrets and keys; customer-facing queries start from an organisation."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import (
    Case,
    Count,
    DateTimeField,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from credentials.governance.selectors import kind_inventory
from portal.models import Organization
from tokens.models import (
    MAX_TRUSTS_PER_ISSUER,
    ClientPublicKey,
    ClientSecret,
    FederatedIdentity,
    M2MApplication,
)


def m2m_apps_for(organization: Organization) -> QuerySet[M2MApplication]:
    """Return the organisation's applications with owner and live secret and key counts, active first."""
    now = timezone.now()
    live = Q(secrets__revoked_at__isnull=True) & (
        Q(secrets__expires_at__isnull=True) | Q(secrets__expires_at__gt=now)
    )
    live_keys = Q(public_keys__revoked_at__isnull=True) & (
        Q(public_keys__expires_at__isnull=True) | Q(public_keys__expires_at__gt=now)
    )
    return (
        M2MApplication.objects.filter(organization=organization)
        .select_related("owner")
        # distinct: the two joins would otherwise multiply each other's rows.
        .annotate(
            live_secret_count=Count("secrets", filter=live, distinct=True),
            live_key_count=Count("public_keys", filter=live_keys, distinct=True),
        )
        .order_by("status", "name", "id")
    )


def m2m_apps_filtered(
    organization: Organization,
    *,
    search: str = "",
    status: str = "",
    owner_id: int | None = None,
    auth_method: str = "",
) -> QuerySet[M2MApplication]:
    """Return the organisation's applications matching a search (name, client id, owner email) and filters.

    Newest first, with owner, creator, scopes, secrets and public keys loaded in a constant
    number of queries however many applications a page holds (the REST API shows them all).
    """
    apps = M2MApplication.objects.filter(organization=organization)
    if search:
        apps = apps.filter(
            Q(name__icontains=search) | Q(client_id__icontains=search) | Q(owner__email__icontains=search)
        )
    # An unknown status or method matches nothing, never everything (a typo in a script's filter).
    if status:
        apps = apps.filter(status=status) if status in M2MApplication.Status.values else apps.none()
    if owner_id:
        apps = apps.filter(owner_id=owner_id)
    if auth_method:
        known = auth_method in M2MApplication.AuthMethod.values
        apps = apps.filter(token_endpoint_auth_method=auth_method) if known else apps.none()
    return (
        apps.select_related("owner", "created_by")
        .prefetch_related(
            "allowed_scopes",
            Prefetch("secrets", queryset=ClientSecret.objects.order_by("-created_at", "-id")),
            Prefetch("public_keys", queryset=ClientPublicKey.objects.order_by("-created_at", "-id")),
        )
        .order_by("-created", "-id")
    )


def m2m_app_for(organization: Organization, pk: int) -> M2MApplication:
    """Return one application of the organisation with its scopes (raises DoesNotExist)."""
    return (
        M2MApplication.objects.filter(organization=organization)
        .select_related("owner", "created_by", "organization")
        .prefetch_related(Prefetch("allowed_scopes"))
        .get(pk=pk)
    )


def client_secrets_for(application: M2MApplication) -> QuerySet[ClientSecret]:
    """Return the application's secrets, newest first."""
    return ClientSecret.objects.filter(application=application).order_by("-created_at", "-id")


def client_public_keys_for(application: M2MApplication) -> QuerySet[ClientPublicKey]:
    """Return the application's registered public keys, newest first."""
    return ClientPublicKey.objects.filter(application=application).order_by("-created_at", "-id")


def m2m_apps_inventory(organization: Organization | None) -> QuerySet[M2MApplication]:
    """Return applications annotated with the inventory's common columns (all organisations for None).

    An application expires when the last of its unrevoked secrets (or public keys) does (never,
    if one has no expiry): once all have, it is expired; it was last used when any of its
    secrets (or keys) was.
    """
    secret_expires, secret_last_used = _credential_columns(ClientSecret)
    key_expires, key_last_used = _credential_columns(ClientPublicKey)
    uses_keys = Q(token_endpoint_auth_method=M2MApplication.AuthMethod.PRIVATE_KEY_JWT)
    return kind_inventory(
        M2MApplication,
        organization,
        kind="m2m_app",
        ref="client_id",
        created="created",
        # A private_key_jwt application has keys and never secrets: read the right table.
        expires=Case(When(uses_keys, then=key_expires), default=secret_expires, output_field=DateTimeField()),
        last_used=Case(
            When(uses_keys, then=key_last_used), default=secret_last_used, output_field=DateTimeField()
        ),
        # The API key it was moved from, if any (its name and id are read for those rows only).
        moved=F("moved_from_key_id"),
    )


def _credential_columns(model):
    """Return (expiry, last use) expressions of an application over its secrets or keys."""
    unrevoked = model.objects.filter(application=OuterRef("pk"), revoked_at__isnull=True)
    expires = Case(
        When(Exists(unrevoked.filter(expires_at__isnull=True)), then=Value(None)),
        default=Subquery(unrevoked.order_by("-expires_at").values("expires_at")[:1]),
        output_field=DateTimeField(),
    )
    last_used = Subquery(
        model.objects.filter(application=OuterRef("pk"), last_used_at__isnull=False)
        .order_by("-last_used_at")
        .values("last_used_at")[:1]
    )
    return expires, last_used


def m2m_app_scope_names(ids: Iterable[int]) -> dict[int, list[str]]:
    """Return {application pk: its scope names, sorted} for the applications given."""
    result: dict[int, list[str]] = {}
    through = M2MApplication.allowed_scopes.through.objects.filter(m2mapplication_id__in=list(ids))
    for pk, name in through.values_list("m2mapplication_id", "scope__name").order_by("scope__name"):
        result.setdefault(pk, []).append(name)
    return result


def untried_trust_ids(application: M2MApplication) -> set[int]:
    """Return the ids of the application's active trusts the token endpoint never tries.

    It tries the oldest MAX_TRUSTS_PER_ISSUER active trusts of the token's issuer
    (`tokens.federation.trust`). Creation refuses a trust past that number, but an application
    given more before the limit existed keeps them: those past it show active and are never tried.
    """
    seen: dict[str, int] = {}
    untried = set()
    active = FederatedIdentity.objects.filter(application=application, status=FederatedIdentity.Status.ACTIVE)
    for pk, issuer in active.order_by("pk").values_list("pk", "issuer"):
        seen[issuer] = seen.get(issuer, 0) + 1
        if seen[issuer] > MAX_TRUSTS_PER_ISSUER:
            untried.add(pk)
    return untried


def federated_identities_for(application: M2MApplication) -> QuerySet[FederatedIdentity]:
    """Return the application's trusts, newest first (here, not in tokens.federation: its page lists them)."""
    return (
        FederatedIdentity.objects.filter(application=application)
        .select_related("owner")
        .order_by("-created_at", "-id")
    )
