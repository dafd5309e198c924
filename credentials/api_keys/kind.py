"""API keys declare themselves here: lifecycle class, policy settings, webhook events and the adapter.

`governed_kind()` is registered from `CredentialsConfig.ready`; governance, webhooks and the
inventory read this declaration and never name the kind (docs/architecture.md, "a third kind").
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q
from django.utils import timezone

from credentials.api_keys import keys
from credentials.api_keys.kind_policy import (
    POLICY_FIELDS,
    api_keys_against_policy,
    check_new_api_key,
    check_new_api_key_request,
)
from credentials.api_keys.models import ApiKey, Environment
from credentials.api_keys.selectors import api_keys_inventory
from credentials.api_keys.services import api_key_revoke, check_scopes
from credentials.api_keys.verification import snapshot_publish
from credentials.governance.models import CredentialRequest, CredentialState
from credentials.governance.org_policy import check_lifetime
from credentials.governance.registry import STANDING, GovernedKind, KindPolicy, MovedLink, SecretMatch
from credentials.lifetimes import expiry_in_days
from credentials.webhooks.models import EventType
from portal.infra.crypto import keyed_digest, verify_digest
from portal.models import User

#: The kind's key, stored in requests, notices and usage rows; its audit actions are `credentials.api_key.*`.
KEY = "api_key"

#: A standing credential: the key itself is presented on every request until it expires or is revoked.
LIFECYCLE = STANDING

#: Its settings on the organisation's policy (the columns hold the defaults: no approval, review
#: every 90 days, no maximum lifetime, new live and test keys allowed).
POLICY = KindPolicy(
    approve_new="approve_new_api_keys",
    review_interval_days="api_key_review_interval_days",
    max_lifetime_days="api_key_max_lifetime_days",
    new_credential_rules=POLICY_FIELDS,
)

#: Audit verb (`credentials.api_key.<verb>`) -> webhook event; other verbs send nothing.
WEBHOOK_EVENTS = {
    "created": EventType.CREATED,
    "secret_issued": EventType.CREATED,  # a key requested, approved, then issued
    "rotated": EventType.ROTATED,
    "revoked": EventType.REVOKED,
    "orphaned": EventType.ORPHANED,
    "suspended": EventType.SUSPENDED,
    "leaked": EventType.LEAKED,
    "policy_changed": EventType.POLICY_CHANGED,
    "policy_flagged": EventType.AGAINST_POLICY,
}


def _issue_first_secret(api_key: ApiKey, actor: User | None, request: CredentialRequest) -> tuple[str, dict]:
    """Give a pending, approved key its secret (the governance service sets the status and audits)."""
    key_id, plaintext = keys.generate(api_key.environment, key_id=api_key.key_id)
    api_key.pepper_id, api_key.digest = keyed_digest(plaintext)
    api_key.last4 = plaintext[-4:]
    api_key.created_at = timezone.now()
    expires_at = expiry_in_days(request.lifetime_days) if request.lifetime_days else None
    # The policy on kinds as it is now, not as it was when the key was requested or approved.
    expires_at = check_new_api_key(api_key.organization, api_key.environment, expires_at)
    api_key.expires_at = check_lifetime(api_key.organization, KEY, expires_at)
    # The digest and the status change together (the table's check constraint).
    api_key.status = CredentialState.ACTIVE
    api_key.save(
        update_fields=["pepper_id", "digest", "last4", "status", "created_at", "expires_at", "updated_at"]
    )
    return plaintext, {
        "key_id": api_key.key_id,
        "expires_at": api_key.expires_at.isoformat() if api_key.expires_at else None,
    }


def _moved_links(ids: Iterable[int]) -> dict[int, MovedLink]:
    """Return the M2M application each key was moved to (the reverse of `M2MApplication.moved_from_key`).

    A denied or withdrawn move never happened (tokens.clients.moves): its application is no link.
    """
    rows = (
        ApiKey.objects.filter(pk__in=list(ids), moved_to_application__isnull=False)
        .exclude(moved_to_application__status=CredentialState.DENIED)
        .values_list(
            "pk", "moved_to_application__pk", "moved_to_application__client_id", "moved_to_application__name"
        )
    )
    return {pk: MovedLink("to", "m2m_app", app_pk, client_id, name) for pk, app_pk, client_id, name in rows}


def _scopes_for(ids: Iterable[int]) -> dict[int, list[str]]:
    return {
        pk: sorted(scopes)
        for pk, scopes in ApiKey.objects.filter(pk__in=list(ids)).values_list("pk", "scopes")
    }


def _set_scopes(api_key: ApiKey, names: list[str]) -> None:
    api_key.scopes = check_scopes(names)
    api_key.save(update_fields=["scopes", "updated_at"])


def _revoke(api_key: ApiKey, actor: User | None, reason: str) -> ApiKey:
    return api_key_revoke(api_key=api_key, actor=actor, reason=reason, via="governance")


def api_key_match_secret(raw: str) -> SecretMatch | None:
    """Return the `SecretMatch` of a presented key whose digest matches, whatever its status, else None.

    For leak reports: the same checks as `api_key_verify` (format and checksum offline, one
    indexed lookup by key id, constant-time digest compare) without the cache or the
    verification metrics, and without judging status or expiry.
    """
    parsed = keys.parse(raw)
    if parsed is None:
        return None
    row = (
        ApiKey.objects.filter(key_id=parsed.key_id)
        .order_by()
        .values("pk", "digest", "pepper_id", "environment", "key_id", "last4", "expires_at")
        .first()
    )
    if row is None or not row["digest"]:
        return None
    if not verify_digest(parsed.raw, pepper_id=row["pepper_id"], digest=row["digest"]):
        return None
    # The secret's own life is its expiry (a rotated-away key's ends with its overlap); the key's
    # status (suspended, revoked) is the credential's, which the leak intake judges by itself.
    expired = row["expires_at"] is not None and row["expires_at"] <= timezone.now()
    return SecretMatch(
        object_id=row["pk"],
        secret_hint=f"{keys.display_prefix(row['environment'], row['key_id'])}…{row['last4']}",
        secret_live=not expired,
    )


def _presented_key_id(principal) -> str | None:
    """Return the key id of the API key a principal presented (or a token was exchanged for)."""
    key_id = principal.credential_id if principal.credential_type == "api_key" else None
    return key_id or principal.extra.get("api_key_id") or None


def _people_behind(principal) -> set[int]:
    """Return the owner and creator of the API key a principal presented (or a token exchanged for it)."""
    key_id = _presented_key_id(principal)
    if not key_id:
        return set()
    row = ApiKey.objects.filter(key_id=key_id).values_list("owner_id", "created_by_id").first()
    return set(row or ())


def governed_kind() -> GovernedKind:
    """Return the governance description of API keys (registered in CredentialsConfig.ready)."""
    return GovernedKind(
        key=KEY,
        label="API key",
        lifecycle=LIFECYCLE,
        audit_prefix="credentials.api_key",
        model=ApiKey,
        touch_field="updated_at",
        ref_attr="key_id",
        url_kwarg="key_id",
        lookup_field="key_id",
        url_name="org-api-key",
        issue_url_name="org-api-key-issue",
        inventory_queryset=api_keys_inventory,
        scopes_of=lambda api_key: list(api_key.scopes),
        scopes_for=_scopes_for,
        set_scopes=_set_scopes,
        issue_secret=_issue_first_secret,
        revoke=_revoke,
        changed=snapshot_publish,
        filter_scope=lambda qs, scope: qs.filter(scopes__icontains=f'"{scope}"'),
        match_secret=api_key_match_secret,
        ref_in_secret=lambda raw: parsed.key_id if (parsed := keys.parse(raw)) is not None else None,
        people_behind=_people_behind,
        presented_ref=_presented_key_id,
        check_new=lambda api_key, lifetime_days: check_new_api_key_request(
            api_key.organization, api_key.environment, lifetime_days
        ),
        policy=POLICY,
        policy_violations=api_keys_against_policy,
        # Live keys are the ones in the live environment (the organisation may require an allowlist).
        is_live=lambda api_key: api_key.environment == Environment.LIVE,
        live_rows=Q(environment=Environment.LIVE),
        superseded=lambda api_key: api_key.rotated_at is not None,
        moved_links=_moved_links,
        webhook_events=WEBHOOK_EVENTS,
    )
