"""M2M applications as a governed credential kind: the adapter registered from TokensConfig.ready."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from credentials.governance.registry import TOKEN_MINTING, GovernedKind, KindPolicy, MovedLink, SecretMatch
from portal.models import User
from tokens.clients.selectors import m2m_app_scope_names, m2m_apps_inventory
from tokens.clients.services import (
    client_secret_find,
    client_secret_issue_first,
    client_secret_revoke,
    m2m_app_revoke,
    scope_rows_of,
)
from tokens.clients.snapshot import forget
from tokens.models import ClientPublicKey, ClientSecret, FederatedIdentity, M2MApplication


def _set_scopes(application: M2MApplication, names: list[str]) -> None:
    application.allowed_scopes.set(scope_rows_of(list(names)))
    # The scopes are a relation, not a column: the row's update time says they changed.
    application.save(update_fields=["updated"])


def _revoke(application: M2MApplication, actor: User | None, reason: str) -> M2MApplication:
    return m2m_app_revoke(application=application, actor=actor)


def _moved_links(ids: Iterable[int]) -> dict[int, MovedLink]:
    """Return the API key each application was moved from."""
    rows = M2MApplication.objects.filter(pk__in=list(ids), moved_from_key__isnull=False).values_list(
        "pk", "moved_from_key__pk", "moved_from_key__key_id", "moved_from_key__name"
    )
    return {pk: MovedLink("from", "api_key", key_pk, key_id, name) for pk, key_pk, key_id, name in rows}


def _match_secret(raw: str) -> SecretMatch | None:
    secret = client_secret_find(raw)
    if secret is None:
        return None
    return SecretMatch(
        object_id=secret.application_id,
        secret_id=secret.pk,
        secret_hint=f"{secret.hint}…",
        secret_live=secret.is_live,
    )


def _revoke_secret(application: M2MApplication, match, actor: User | None) -> None:
    """Revoke just the leaked secret; tokens minted with it stop validating (their `csid`)."""
    client_secret_revoke(secret=ClientSecret.objects.get(pk=match.secret_id), actor=actor)


def _presented_client_id(principal) -> str | None:
    """Return the client id of the application whose token a principal presented."""
    client_id = principal.extra.get("client_id") if principal.credential_type == "access_token" else None
    return client_id or None


def _people_behind(principal) -> set[int]:
    """Return who stands behind the application whose token a principal presented.

    Its owner and creator; whoever created one of its live secrets or public keys, or owns or
    added one of its trusts that is not closed (each of them can mint its tokens); and whoever
    created the very secret or key that minted this token, live or not (a token outlives a
    secret that merely stopped after minting it).
    """
    client_id = _presented_client_id(principal)
    if not client_id:
        return set()
    application = M2MApplication.objects.filter(client_id=client_id).first()
    if application is None:
        return set()
    people = {application.owner_id, application.created_by_id}
    for model in (ClientSecret, ClientPublicKey):
        people |= set(
            model.objects.live().filter(application=application).values_list("created_by_id", flat=True)
        )
    # A trust's tokens die with it (tokens.protocol.selectors): those not closed cover the minter.
    trusts = FederatedIdentity.objects.filter(application=application).exclude(
        status__in=[FederatedIdentity.Status.REVOKED, FederatedIdentity.Status.DENIED]
    )
    for pair in trusts.values_list("owner_id", "created_by_id"):
        people.update(pair)
    minted_by = principal.minted_by
    for claim, model, field in (("csid", ClientSecret, "public_id"), ("ckid", ClientPublicKey, "kid")):
        if claim in minted_by:
            minter = model.objects.filter(application=application, **{field: minted_by[claim]})
            people |= set(minter.values_list("created_by_id", flat=True))
    return people


def governed_kind() -> GovernedKind:
    """Return the governance description of M2M applications (registered in TokensConfig.ready)."""
    return GovernedKind(
        key="m2m_app",
        label="M2M application",
        lifecycle=TOKEN_MINTING,
        audit_prefix="tokens.m2m_app",
        model=M2MApplication,
        touch_field="updated",
        ref_attr="client_id",
        url_kwarg="app_id",
        lookup_field="pk",
        url_name="org-app",
        issue_url_name="org-app-issue-secret",
        inventory_queryset=m2m_apps_inventory,
        scopes_of=lambda application: list(application.allowed_scopes.values_list("name", flat=True)),
        scopes_for=m2m_app_scope_names,
        set_scopes=_set_scopes,
        issue_secret=client_secret_issue_first,
        revoke=_revoke,
        # The receivers of tokens.clients.snapshot see the write already; said again here.
        changed=lambda application: forget([application.client_id]),
        moved_links=_moved_links,
        filter_scope=lambda qs, scope: qs.filter(allowed_scopes__name=scope),
        match_secret=_match_secret,
        revoke_secret=_revoke_secret,
        people_behind=_people_behind,
        presented_ref=_presented_client_id,
        policy=KindPolicy(
            approve_new="approve_new_m2m_apps",
            review_interval_days="m2m_app_review_interval_days",
            max_lifetime_days="client_secret_max_lifetime_days",
        ),
        # Every application counts as live (it mints tokens for production use whatever its name).
        is_live=lambda application: True,
        live_rows=Q(),
        # Audit verb (`tokens.m2m_app.<verb>`) -> webhook event (credentials.webhooks).
        # An application moved from an API key keeps the key's review date (a move is no review).
        carried_review_due=lambda application: (
            application.moved_from_key.review_due_at if application.moved_from_key_id else None
        ),
        webhook_events={
            "created": "created",
            "secret_issued": "created",
            "secret_rotated": "rotated",
            # The first public key of an approved private_key_jwt application says `activated`:
            # it is sent as `created` (credentials.webhooks.events).
            "public_key_added": "rotated",
            "revoked": "revoked",
            "secret_revoked": "revoked",
            "public_key_revoked": "revoked",
            "orphaned": "orphaned",
            "suspended": "suspended",
            "leaked": "leaked",
            "policy_changed": "policy_changed",
            "policy_flagged": "against_policy",
        },
    )
