"""Reads of leak reports, starting from the organisation."""

from __future__ import annotations

from django.db import models
from django.db.models import QuerySet

from credentials.governance.registry import kind_of
from credentials.leaks.models import LeakReport
from portal.models import Organization


def leak_reports_for(organization: Organization) -> QuerySet[LeakReport]:
    """Return the organisation's leak reports, newest first."""
    return LeakReport.objects.filter(organization=organization).order_by("-received_at", "-id")


def leak_reports_for_credential(credential: models.Model) -> QuerySet[LeakReport]:
    """Return the reports about one credential (either kind), newest first."""
    return leak_reports_for(credential.organization).filter(
        kind=kind_of(credential).key, object_id=credential.pk
    )
