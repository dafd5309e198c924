"""Helpers every governance write shares: lock a credential row, save it, audit the change.

Each service takes keyword-only arguments, runs in one transaction, locks the rows it
changes (select_for_update) and writes exactly one audit event with the actor.
"""

from __future__ import annotations

import logging

from django.db import models

from credentials.governance.models import (
    CredentialStatus,
)
from credentials.governance.registry import (
    GovernedKind,
    kind_of,
)
from portal.services.audit import audit_log

logger = logging.getLogger(__name__)


LIVE_STATUSES = (CredentialStatus.PENDING, CredentialStatus.ACTIVE, CredentialStatus.SUSPENDED)


def audit_change(kind: GovernedKind, verb: str, *, credential, actor, extra: dict | None = None) -> None:
    audit_log(
        action=f"{kind.audit_prefix}.{verb}",
        actor=actor,
        organization=credential.organization,
        target=credential,
        extra=extra,
    )


def locked_credential(credential: models.Model) -> models.Model:
    kind = kind_of(credential)
    return (
        kind.model.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=credential.pk)
    )


def save_fields(credential, kind: GovernedKind, *fields: str) -> None:
    credential.save(update_fields=[*fields, kind.touch_field])
