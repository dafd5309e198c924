"""Direct changes to a credential's scopes and runtime policy (IP allowlist, rate limit), audited."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction

from credentials import policy
from credentials.governance.common import audit_change, locked_credential, save_fields
from credentials.governance.models import CredentialStatus
from credentials.governance.org_policy import (
    check_runtime_policy_change,
    policy_locked,
    refresh_policy_flag,
    scope_increase_needs_approval,
)
from credentials.governance.ownership import check_owner_may_hold
from credentials.governance.registry import GovernedKind, kind_of
from portal.models import User


@transaction.atomic
def credential_scopes_set(
    *,
    credential: models.Model,
    scopes: Iterable[str],
    actor: User | None,
    via: str = "",
    shown: Iterable[str] | None = None,
) -> models.Model:
    """Set a credential's scopes directly; a widening under a policy requiring approval is refused.

    `via` names the interface or credential that made the change (`api`, `api_key:…`), for the audit.
    With `shown` (the scopes a page listed when it was read), `scopes` is applied as a change to
    those: the ones unticked are removed and the ones ticked added, to the scopes as they are
    under the lock, so a scope granted since the page was read stays (`scope_change`).
    """
    kind = kind_of(credential)
    credential = locked_credential(credential)
    if credential.status != CredentialStatus.ACTIVE:
        raise ValidationError(f"A {credential.status} credential's scopes cannot change.", code="inactive")
    old = sorted(kind.scopes_of(credential))
    new = scope_change(old, scopes, shown)
    if new != old:
        check_not_superseded(kind, credential)
    if scope_increase_needs_approval(credential.organization, old, new):
        raise ValidationError(
            {"scopes": "Your organisation requires an approval for more scopes."}, code="approval"
        )
    if new == old:
        return credential
    check_owner_may_hold(credential.organization, credential.owner, set(new) - set(old))
    kind.set_scopes(credential, new)
    extra = {"from": old, "to": new}
    audit_change(kind, "scopes_changed", credential=credential, actor=actor, extra=extra, via=via)
    kind.changed(credential)
    return credential


def scope_change(current: Iterable[str], wanted: Iterable[str], shown: Iterable[str] | None) -> list[str]:
    """Return the scopes `wanted` means: the whole new list, or, with the scopes a page `shown`
    when it was read, that page's change (unticked removed, ticked added) made to `current`."""
    if shown is None:
        return sorted(set(wanted))
    wanted, shown = set(wanted), set(shown)
    return sorted((set(current) - (shown - wanted)) | (wanted - shown))


_UNSET: Any = object()


def check_not_superseded(
    kind: GovernedKind, credential: models.Model, advice: str = "Make this change on the successor."
) -> None:
    """Refuse (`rotated`) a change to a credential its successor replaced (a rotated API key in its
    overlap): the integration moves to the successor, which the change would never reach."""
    if kind.superseded(credential):
        raise ValidationError(f"It was rotated: its successor is the one in use. {advice}", code="rotated")


def runtime_policy_changes(
    credential: models.Model, *, allowed_ips: Any = _UNSET, rate_limit: Any = _UNSET
) -> dict[str, dict[str, Any]]:
    """Return what these values would change in the credential's runtime policy,
    `{field: {"from", "to"}}` with the new values normalised; raise a field error for a bad value.
    Omitted arguments, and values equal to the current ones once normalised, are no change."""
    changes: dict[str, dict[str, Any]] = {}
    if allowed_ips is not _UNSET:
        current_ips, new_ips = list(credential.allowed_ips or []), policy.clean_allowed_ips(allowed_ips)
        if new_ips != current_ips:
            changes["allowed_ips"] = {"from": current_ips, "to": new_ips}
    if rate_limit is not _UNSET:
        current_limit, new_limit = credential.rate_limit or None, policy.clean_rate_limit(rate_limit)
        if new_limit != current_limit:
            changes["rate_limit"] = {"from": current_limit, "to": new_limit}
    return changes


@transaction.atomic
def credential_policy_set(
    *,
    credential: models.Model,
    actor: User | None,
    allowed_ips: Any = _UNSET,
    rate_limit: Any = _UNSET,
    via: str = "",
) -> models.Model:
    """Change a credential's runtime policy (IP allowlist, rate limit): one audit row, effective at once.

    Omitted arguments keep their value. Any kind, any status: a revoked credential's policy is
    moot but harmless. A rotated one's is refused (`rotated`): its successor, which does not
    share the policy, is the one in use. Every server sees the change within a second
    (`kind.changed` drops the cached verification snapshot, as a revocation does).
    """
    kind = kind_of(credential)
    # The policy row before the credential's (a policy change locks it, then flags credentials):
    # the change is judged by the rules as they are, or the policy change sees it and flags it.
    policy_locked(credential.organization)
    credential = locked_credential(credential)
    changes = runtime_policy_changes(credential, allowed_ips=allowed_ips, rate_limit=rate_limit)
    if not changes:
        return credential
    # Judged under the lock: a rotation that committed since the caller read the key counts.
    check_not_superseded(kind, credential)
    for field, change in changes.items():
        setattr(credential, field, change["to"])
    check_runtime_policy_change(credential, changes)
    save_fields(credential, kind, "allowed_ips", "rate_limit")
    refresh_policy_flag(credential)
    audit_change(kind, "policy_changed", credential=credential, actor=actor, extra=changes, via=via)
    kind.changed(credential)
    return credential
