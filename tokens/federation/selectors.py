"""Reads for federated identities; every customer-facing query starts from an organisation."""

from __future__ import annotations

from django.db.models import (
    DateTimeField,
    F,
    IntegerField,
    QuerySet,
    Value,
)

from credentials.governance.selectors import kind_inventory
from portal.models import Organization
from tokens.models import FederatedIdentity


def federated_identities_inventory(organization: Organization | None) -> QuerySet[FederatedIdentity]:
    """Return federated identities annotated with the inventory's common columns (all organisations for None).

    A trust holds no secret and never expires by itself; it was last used when its last token was accepted.
    """
    return kind_inventory(
        FederatedIdentity,
        organization,
        kind="federated_id",
        ref="public_id",
        created="created_at",
        expires=Value(None, output_field=DateTimeField()),
        last_used=F("last_used_at"),
        # A trust is never moved from or to another kind.
        moved=Value(None, output_field=IntegerField()),
    )


def federated_identity_for(organization: Organization, pk: int) -> FederatedIdentity:
    """Return one trust of the organisation (raises DoesNotExist)."""
    return FederatedIdentity.objects.select_related("application", "owner", "organization").get(
        organization=organization, pk=pk
    )
