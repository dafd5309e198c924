"""Helpers every credential write shares: lock a credential row, save it, audit the change."""

from __future__ import annotations

from typing import Any

from django.db import models

from credentials.governance.models import CredentialStatus
from credentials.governance.registry import GovernedKind, kind_of
from portal.models import User
from portal.services.audit import audit_log

#: Statuses in which a credential still belongs to someone (orphaning and reassignment apply).
LIVE_STATUSES = (CredentialStatus.PENDING, CredentialStatus.ACTIVE, CredentialStatus.SUSPENDED)


def about(credential: models.Model, kind: GovernedKind) -> dict[str, Any]:
    """Return the fields by which a request or a leak report points at its credential (kind + id)."""
    return {
        "organization": credential.organization,
        "kind": kind.key,
        "object_id": credential.pk,
        "credential_label": str(credential)[:255],
    }


def credential_audit(
    action: str,
    credential: models.Model,
    *,
    actor: User | None,
    extra: dict[str, Any] | None = None,
    via: str = "",
) -> None:
    """Write the one audit event of a change to a credential, in the credential's organisation.

    `via` names the interface or credential that made the change (`api`, `cli`, `api_key:…`);
    when given it is added to `extra`, last.
    """
    audit_log(
        action=action,
        actor=actor,
        organization=credential.organization,
        target=credential,
        extra={**(extra or {}), "via": via} if via else extra,
    )


def audit_change(
    kind: GovernedKind, verb: str, *, credential, actor, extra: dict | None = None, via: str = ""
) -> None:
    """Write the one audit event of a change to a credential: `<kind's audit prefix>.<verb>`."""
    credential_audit(f"{kind.audit_prefix}.{verb}", credential, actor=actor, extra=extra, via=via)


def locked_credential(credential: models.Model) -> models.Model:
    """Return the credential's row afresh, locked until the end of the transaction."""
    kind = kind_of(credential)
    return (
        kind.model.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=credential.pk)
    )


def save_fields(credential, kind: GovernedKind, *fields: str) -> None:
    """Save these fields of a credential and its kind's auto-updated timestamp."""
    credential.save(update_fields=[*fields, kind.touch_field])
