"""The policy on kinds for API keys: which new live or test keys an organisation allows (docs/choosing.md).

The settings are `OrganizationPolicy.new_<environment>_api_keys[_max_days]`; this kind declares
them (`credentials.api_keys.kind`), so governance re-flags keys when one changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from credentials import lifetimes
from credentials.api_keys.models import ApiKey, Environment
from credentials.governance.models import CredentialState, NewApiKeys, OrganizationPolicy
from credentials.governance.org_policy import policy_locked
from portal.models import Organization

#: The OrganizationPolicy columns of the policy on kinds: changing one re-flags existing keys.
POLICY_FIELDS = (
    "new_live_api_keys",
    "new_live_api_keys_max_days",
    "new_test_api_keys",
    "new_test_api_keys_max_days",
)


def check_new_api_key(
    organization: Organization, environment: str, expires_at: datetime | None
) -> datetime | None:
    """Apply the policy on kinds to a new API key: refuse it, or return its (possibly filled-in) expiry.

    Must run inside the creating transaction: it locks the policy row. Where keys need an expiry
    of at most N days, a key without one expires in N days; a longer one is refused.
    """
    policy = policy_locked(organization)
    rule, days = policy.new_api_keys(environment)
    label = "Live" if environment == "live" else "Test"
    if rule == NewApiKeys.FORBIDDEN:
        raise ValidationError(
            f"{label} API keys are not allowed by your organisation's credential policy: create an M2M "
            "application instead.",
            code="api_keys_not_allowed",
        )
    if rule == NewApiKeys.EXPIRING and days:
        latest = lifetimes.expiry_in_days(days)
        if expires_at is None:
            return latest
        if expires_at > lifetimes.add_clamped(latest, lifetimes.GRACE):
            raise ValidationError(
                {
                    "expires_at": ValidationError(
                        f"Your organisation's credential policy allows {environment} API keys only with "
                        f"an expiry of at most {days} days.",
                        code="api_key_expiry_too_long",
                    )
                }
            )
    return expires_at


def check_new_api_key_request(
    organization: Organization, environment: str, lifetime_days: int | None
) -> None:
    """Refuse a key the policy on kinds does not allow (a request or an approval: no key row yet)."""
    check_new_api_key(
        organization, environment, lifetimes.expiry_in_days(lifetime_days) if lifetime_days else None
    )


def api_keys_against_policy(policy: OrganizationPolicy) -> QuerySet[ApiKey]:
    """Return the organisation's working keys the policy on kinds would not allow to be created today."""
    now = timezone.now()
    working = ApiKey.objects.filter(
        organization_id=policy.organization_id, status=CredentialState.ACTIVE
    ).exclude(expires_at__lte=now)
    against = Q(pk__in=[])
    for environment in Environment.values:
        rule, days = policy.new_api_keys(environment)
        if rule == NewApiKeys.FORBIDDEN:
            against |= Q(environment=environment)
        elif rule == NewApiKeys.EXPIRING and days:
            latest = lifetimes.add_clamped(lifetimes.expiry_in_days(days, now=now), lifetimes.GRACE)
            against |= Q(environment=environment) & (Q(expires_at__isnull=True) | Q(expires_at__gt=latest))
    return working.filter(against)


def api_key_policy_summary(policy: OrganizationPolicy) -> dict[str, Any]:
    """Return the rules for new live and test keys, and how many working keys are flagged against them."""
    summary: dict[str, Any] = {"organization": policy.organization.slug}
    for environment in Environment.values:
        rule, days = policy.new_api_keys(environment)
        # The names of the REST answer (policy_api), so a script reads both the same way.
        summary[f"new_{environment}_api_keys"] = rule
        summary[f"new_{environment}_api_keys_max_days"] = days
    summary["flagged_api_keys"] = flagged_api_key_count(policy.organization)
    return summary


def flagged_api_key_count(organization: Organization) -> int:
    """Return how many of the organisation's active keys are flagged against the policy (they still work)."""
    return ApiKey.objects.filter(
        organization=organization, policy_flagged_at__isnull=False, status=CredentialState.ACTIVE
    ).count()
