"""Reads for federated identities; every customer-facing query starts from an organisation."""

from __future__ import annotations

from django.db.models import (
    CharField,
    DateTimeField,
    F,
    IntegerField,
    QuerySet,
    Value,
)

from portal.models import Organization
from tokens.models import FederatedIdentity


def federated_identities_inventory(organization: Organization | None) -> QuerySet[FederatedIdentity]:
    """Return federated identities annotated with the inventory's common columns (all organisations for None).

    A trust holds no secret and never expires by itself; it was last used when its last token was accepted.
    """
    identities = (
        FederatedIdentity.objects.all()
        if organization is None
        else FederatedIdentity.objects.filter(organization=organization)
    )
    return identities.annotate(
        row_kind=Value("federated_id", output_field=CharField()),
        row_ref=F("public_id"),
        row_superseded=Value(False),
        row_owner_email=F("owner__email"),
        row_created=F("created_at"),
        row_expires=Value(None, output_field=DateTimeField()),
        row_last_used=F("last_used_at"),
        # A trust is never moved from or to another kind.
        row_moved=Value(None, output_field=IntegerField()),
    )


def federated_identity_for(organization: Organization, pk: int) -> FederatedIdentity:
    """Return one trust of the organisation (raises DoesNotExist)."""
    return FederatedIdentity.objects.select_related("application", "owner", "organization").get(
        organization=organization, pk=pk
    )
