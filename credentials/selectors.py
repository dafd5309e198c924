"""Reads for credentials."""

from __future__ import annotations

from django.db.models import QuerySet

from credentials.models import Scope


def scope_catalogue() -> QuerySet[Scope]:
    """Return every scope a credential may hold, by name."""
    return Scope.objects.order_by("name")
