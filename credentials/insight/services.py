"""Narrow a credential's scopes to those its requests needed in the last 30 days (both kinds)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models, transaction

from credentials.governance.common import locked_credential
from credentials.governance.edits import credential_scopes_set
from credentials.governance.registry import kind_of
from credentials.insight.models import UsageScope
from credentials.insight.selectors import scope_suggestion
from portal.models import User


@transaction.atomic
def credential_scopes_narrow_to_used(*, credential: models.Model, actor: User | None) -> list[str]:
    """Remove the scopes no request needed in the last 30 days; return the scopes kept.

    Goes through governance's scope change (narrowing needs no approval; one audit event
    `<kind>.scopes_changed` with `via: narrow_to_used`). Refused when nothing would change or
    when every scope would go (a credential with no scope: revoke it instead).
    """
    kind = kind_of(credential)
    # From the row as it is now, under its lock: scopes removed meanwhile must not come back.
    credential = locked_credential(credential)
    current = sorted(kind.scopes_of(credential))
    suggestion = scope_suggestion(
        organization_id=credential.organization_id,
        kind=kind.key,
        credential_id=getattr(credential, kind.ref_attr),
        scopes=current,
    )
    used = [row["scope"] for row in suggestion["used"]]
    if not used:
        raise ValidationError(
            f"No request needed any of this {kind.label}'s scopes in the last {suggestion['days']} days: "
            "narrowing would remove every scope. Keep the scopes, or revoke it if it is no longer used.",
            code="would_remove_all",
        )
    if not suggestion["unused"]:
        raise ValidationError(
            f"Every scope was used in the last {suggestion['days']} days: there is nothing to remove.",
            code="nothing_to_narrow",
        )
    credential_scopes_set(credential=credential, scopes=used, actor=actor, via="narrow_to_used")
    return used


def scope_use_carry_over(
    *, organization_id: int, from_kind: str, from_ref: str, to_kind: str, to_ref: str
) -> None:
    """Give a credential that takes over from another the other's scope use (count 0, `last_used` kept).

    The same integration goes on with a new credential: an API key's successor after a rotation
    (a new key id), or the M2M application a key was moved to (another kind). A scope it needed
    before is not "never used" on the new credential, and narrowing must not remove it. Safe to
    run again (a move's application when it gets its first secret): a scope already there keeps
    the later of the two `last_used`, and its own count.
    """
    rows = list(
        UsageScope.objects.filter(organization_id=organization_id, kind=from_kind, credential_id=from_ref)
    )
    if not rows:
        return
    target = UsageScope.objects.filter(organization_id=organization_id, kind=to_kind, credential_id=to_ref)
    known = dict(target.values_list("scope", "last_used"))
    UsageScope.objects.bulk_create(
        [
            UsageScope(
                organization_id=organization_id,
                kind=to_kind,
                credential_id=to_ref,
                scope=row.scope,
                count=0,
                last_used=row.last_used,
            )
            for row in rows
            if row.scope not in known
        ],
        ignore_conflicts=True,  # a use recorded meanwhile by the roll-up: it is newer
    )
    for row in rows:
        if row.scope in known and known[row.scope] < row.last_used:
            # Conditional, so a later use the roll-up writes meanwhile is never moved back.
            target.filter(scope=row.scope, last_used__lt=row.last_used).update(last_used=row.last_used)
