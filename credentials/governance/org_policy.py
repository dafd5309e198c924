"""The organisation's credential policy: defaults on first use, audited changes, lifetimes, review dates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from credentials import lifetimes
from credentials import policy as runtime
from credentials.governance.common import audit_change, save_fields
from credentials.governance.models import CredentialStatus, OrganizationPolicy
from credentials.governance.notices import notice_send_once
from credentials.governance.ownership import managers_of, notice_recipients
from credentials.governance.registry import GovernedKind, all_kinds, kind_of, new_credential_rule_fields
from portal.models import Organization, User
from portal.services.audit import audit_log


def policy_for(organization: Organization) -> OrganizationPolicy:
    """Return the organisation's policy, creating it with the defaults on first use."""
    try:
        return organization.credential_policy
    except OrganizationPolicy.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            policy = OrganizationPolicy.objects.create(organization=organization)
    except IntegrityError:
        policy = OrganizationPolicy.objects.get(organization=organization)
    organization.credential_policy = policy
    return policy


#: The policy settings every kind shares; each kind adds the columns it declares (`KindPolicy`).
SHARED_POLICY_FIELDS = (
    "approve_scope_increases",
    "default_rotation_overlap_hours",
    "orphan_grace_days",
    "overdue_grace_days",
    "leaked_credential_action",
    *("require_allowed_ips_for_live", "default_rate_limit", "max_rate_limit"),
)

#: The runtime-policy rules (both kinds): a change re-flags existing credentials, like the policy on kinds.
RUNTIME_RULE_FIELDS = ("require_allowed_ips_for_live", "max_rate_limit")


def policy_fields() -> tuple[str, ...]:
    """Return the names of every setting `policy_update` may change: the shared ones and each kind's."""
    declared = [
        column
        for kind in all_kinds()
        if kind.policy is not None
        for column in (
            kind.policy.approve_new,
            kind.policy.review_interval_days,
            kind.policy.max_lifetime_days,
            *kind.policy.new_credential_rules,
        )
    ]
    return SHARED_POLICY_FIELDS + tuple(declared)


@transaction.atomic
def policy_update(*, organization: Organization, actor: User | None, **values: Any) -> OrganizationPolicy:
    """Change the organisation's policy; the audit event lists each change."""
    for name, value in values.items():
        if name not in policy_fields():
            raise ValidationError(f"Unknown policy setting {name!r}.")
        if name in ("default_rate_limit", "max_rate_limit"):
            values[name] = _clean_limit_setting(name, value)
    policy = policy_for(organization)
    policy = OrganizationPolicy.objects.select_for_update().get(pk=policy.pk)
    changes = {}
    for name, value in values.items():
        if getattr(policy, name) != value:
            changes[name] = {"from": getattr(policy, name), "to": value}
            setattr(policy, name, value)
    if not changes:
        return policy
    policy.full_clean()
    policy.save()
    audit_log(
        action="credentials.policy.updated",
        actor=actor,
        organization=organization,
        target=policy,
        target_label=f"Credential policy of {organization.slug}",
        extra=changes,
    )
    organization.credential_policy = policy
    if changes.keys() & {*new_credential_rule_fields(), *RUNTIME_RULE_FIELDS}:
        _flag_against_policy(policy, actor)
    return policy


def _clean_limit_setting(name: str, value: Any) -> dict[str, int] | None:
    """Return a rate-limit setting normalised, its errors filed under the setting's own name."""
    try:
        return runtime.clean_rate_limit(value)
    except ValidationError as exc:
        raise ValidationError({name: exc.message_dict["rate_limit"]}, code="rate_limit") from None


def _flag_against_policy(policy: OrganizationPolicy, actor: User | None) -> int:
    """Flag the working credentials the policy would not allow today; tell their owners once per flag.

    Nothing is revoked or suspended: an existing integration keeps working. A credential the
    policy allows again loses its flag. Return how many credentials are newly flagged.
    """
    now = timezone.now()
    settings_now = {
        name: getattr(policy, name) for name in (*new_credential_rule_fields(), *RUNTIME_RULE_FIELDS)
    }
    # One notice per flag: the period is when it was flagged, so a credential flagged again
    # later (the same rules brought back) is a new notice, and one still flagged gets none.
    period = now.isoformat()
    flagged = 0
    managers = [u.email for u in managers_of(policy.organization)]
    for kind in all_kinds():
        violating_ids = _violating_ids(kind, policy)
        if violating_ids is None:
            continue
        kind.model.objects.filter(organization=policy.organization, policy_flagged_at__isnull=False).exclude(
            pk__in=violating_ids
        ).update(policy_flagged_at=None)
        violating = kind.model.objects.filter(pk__in=violating_ids)
        for credential in violating.select_related("organization", "owner"):
            if credential.policy_flagged_at is not None:
                continue  # flagged (and its owner told) by an earlier change
            credential.policy_flagged_at = now
            save_fields(credential, kind, "policy_flagged_at")
            audit_change(
                kind, "policy_flagged", credential=credential, actor=actor, extra={"policy": settings_now}
            )
            notice_send_once(
                credential=credential,
                notice_type="against_policy",
                period=period,
                # Its owner while a member; a former member's credential is the managers' to hear about.
                recipients=notice_recipients(credential, managers=[]) or managers,
                context={"policy": policy},
            )
            flagged += 1
    return flagged


def _violating_ids(kind: GovernedKind, policy: OrganizationPolicy) -> set[int] | None:
    """Return the pks of the kind's working rows against the policy on kinds or the runtime rules.

    None for a kind neither can flag.
    """
    if kind.policy_violations is None and kind.live_rows is None:
        return None
    ids = (
        set(kind.policy_violations(policy).values_list("pk", flat=True)) if kind.policy_violations else set()
    )
    return ids | runtime_violations(kind, policy)


def runtime_violations(kind: GovernedKind, policy: OrganizationPolicy) -> set[int]:
    """Return the pks of the kind's active rows the runtime rules would refuse today.

    A live row without an allowlist when one is required, a row whose limit exceeds the ceiling
    (or that has none under a ceiling). Read in Python: the limit is a JSON value, compared as a rate.
    """
    if kind.live_rows is None or not (policy.require_allowed_ips_for_live or policy.max_rate_limit):
        return set()
    rows = kind.model.objects.filter(organization_id=policy.organization_id, status=CredentialStatus.ACTIVE)
    ids: set[int] = set()
    if policy.require_allowed_ips_for_live:
        for pk, allowed in rows.filter(kind.live_rows).values_list("pk", "allowed_ips"):
            if not allowed:
                ids.add(pk)
    if policy.max_rate_limit:
        for pk, limit in rows.values_list("pk", "rate_limit"):
            if runtime.exceeds(limit or None, policy.max_rate_limit):
                ids.add(pk)
    return ids


def _runtime_errors(
    policy: OrganizationPolicy,
    kind: GovernedKind,
    credential: models.Model,
    *,
    allowed_ips: Any,
    rate_limit: Any,
) -> dict[str, str]:
    """Return the field errors the runtime rules give for these values (`_UNCHANGED`: not checked)."""
    errors = {}
    live = kind.is_live(credential)
    if allowed_ips is not _UNCHANGED and not allowed_ips and live and policy.require_allowed_ips_for_live:
        errors["allowed_ips"] = (
            "Your organisation requires an IP allowlist on live credentials: "
            "give the networks it is used from."
        )
    if rate_limit is not _UNCHANGED and runtime.exceeds(rate_limit, policy.max_rate_limit):
        ceiling = runtime.format_rate_limit(policy.max_rate_limit)
        errors["rate_limit"] = (
            f"Your organisation allows at most {ceiling} (requests/seconds) on average: "
            "give a limit within it."
        )
    return errors


_UNCHANGED: Any = object()


def runtime_policy_for_new(
    credential: models.Model, *, allowed_ips: list[str], rate_limit: dict[str, int] | None
) -> dict[str, int] | None:
    """Apply the organisation's runtime rules to a new credential (saved or not); return its rate limit.

    A missing limit becomes the policy's default, or else its ceiling. An empty allowlist on a
    live credential (the kind says which are live) when the policy requires one, or a limit above
    the ceiling, is a field error (`allowed_ips`, `rate_limit`).
    """
    kind = kind_of(credential)
    if kind.is_live is None:
        return rate_limit
    current = policy_for(credential.organization)
    if rate_limit is None:
        rate_limit = current.default_rate_limit or current.max_rate_limit
    errors = _runtime_errors(current, kind, credential, allowed_ips=allowed_ips, rate_limit=rate_limit)
    if errors:
        raise ValidationError(errors, code="runtime_policy")
    return rate_limit


def check_runtime_policy_change(credential: models.Model, changes: dict[str, Any]) -> None:
    """Refuse a change of a credential's runtime policy the organisation's rules do not allow.

    Only the values that change are judged: a credential flagged against the rules may still get
    a tighter limit without first getting an allowlist.
    """
    kind = kind_of(credential)
    if kind.is_live is None:
        return
    errors = _runtime_errors(
        policy_for(credential.organization),
        kind,
        credential,
        allowed_ips=changes["allowed_ips"]["to"] if "allowed_ips" in changes else _UNCHANGED,
        rate_limit=changes["rate_limit"]["to"] if "rate_limit" in changes else _UNCHANGED,
    )
    if errors:
        raise ValidationError(errors, code="runtime_policy")


def refresh_policy_flag(credential: models.Model) -> None:
    """Clear a credential's against-the-policy flag once neither the kind nor the runtime rules apply."""
    if credential.policy_flagged_at is None:
        return
    kind = kind_of(credential)
    violating = _violating_ids(kind, policy_for(credential.organization)) or set()
    if credential.pk not in violating:
        credential.policy_flagged_at = None
        save_fields(credential, kind, "policy_flagged_at")


def policy_locked(organization: Organization) -> OrganizationPolicy:
    """Return the policy row locked until the end of the transaction.

    A key creation and a policy change serialise on it: a creation either commits before the
    change (and is then flagged by it) or waits and is judged by the new policy.
    """
    # Read afresh, never from the organisation's cached policy (it may come from another transaction).
    locked = OrganizationPolicy.objects.select_for_update().filter(organization_id=organization.pk).first()
    if locked is None:
        try:
            with transaction.atomic():
                OrganizationPolicy.objects.create(organization=organization)
        except IntegrityError:
            pass  # a concurrent first use created it
        locked = OrganizationPolicy.objects.select_for_update().get(organization_id=organization.pk)
    organization.credential_policy = locked
    return locked


def review_due_from(organization: Organization, kind: str, *, now: datetime | None = None) -> datetime:
    """Return when a credential of `kind` created or reviewed now is next due for review."""
    return (now or timezone.now()) + policy_for(organization).review_interval(kind)


def max_lifetime_days(organization: Organization, kind: str) -> int:
    """Return the longest lifetime in days a credential of `kind` may get: the policy's, at most ten years."""
    days = policy_for(organization).max_lifetime_days(kind)
    return min(days or lifetimes.MAX_LIFETIME_DAYS, lifetimes.MAX_LIFETIME_DAYS)


def check_lifetime(organization: Organization, kind: str, expires_at: datetime | None) -> datetime | None:
    """Apply the policy's maximum lifetime: fill in a missing expiry, refuse a longer one.

    Without a policy maximum a missing expiry stays missing, but no expiry may lie more than
    ten years ahead (`credentials.lifetimes`).
    """
    days = policy_for(organization).max_lifetime_days(kind)
    now = timezone.now()
    if not days:
        if expires_at is not None:
            lifetimes.check_expiry(expires_at, now=now)
        return expires_at
    latest = lifetimes.expiry_in_days(min(days, lifetimes.MAX_LIFETIME_DAYS), now=now)
    if expires_at is None:
        return latest
    if expires_at > lifetimes.add_clamped(latest, lifetimes.GRACE):
        raise ValidationError(
            {"expires_at": f"Your organisation allows at most {days} days."}, code="max_lifetime"
        )
    return expires_at


def approval_required(organization: Organization, kind: str) -> bool:
    """Return whether a new credential of `kind` must be approved first."""
    return policy_for(organization).requires_approval_for(kind)


def scope_increase_needs_approval(organization: Organization, old: Iterable[str], new: Iterable[str]) -> bool:
    """Return whether going from `old` to `new` scopes widens them under a policy requiring approval."""
    return bool(set(new) - set(old)) and policy_for(organization).approve_scope_increases
