"""Federated identities as a governed credential kind: the adapter registered from TokensConfig.ready."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError

from credentials.governance.registry import FEDERATED, GovernedKind
from portal.models import User
from tokens.clients.selectors import m2m_app_scope_names
from tokens.federation.selectors import federated_identities_inventory
from tokens.federation.services import FEDERATED_KIND, federated_identity_revoke
from tokens.models import FederatedIdentity, M2MApplication


def _activate_federated_identity(
    identity: FederatedIdentity, actor: User | None, request
) -> tuple[str, dict]:
    """Make an approved trust usable (governance sets the status and audits); nothing secret exists."""
    # Locked: a revocation of the application either commits first (and this refuses) or waits
    # and then closes the trust with its other ones.
    application = M2MApplication.objects.select_for_update(of=("self",)).get(pk=identity.application_id)
    if not application.is_active:
        raise ValidationError("The application is no longer active.", code="inactive")
    return "", {"id": identity.public_id, "client_id": application.client_id}


def _federated_scopes_for(ids: Iterable[int]) -> dict[int, list[str]]:
    """A trust acts with its application's scopes: {trust pk: the application's scope names}."""
    rows = dict(FederatedIdentity.objects.filter(pk__in=list(ids)).values_list("pk", "application_id"))
    by_app = m2m_app_scope_names(set(rows.values()))
    return {pk: by_app.get(app_id, []) for pk, app_id in rows.items()}


def _federated_set_scopes(identity: FederatedIdentity, names: list[str]) -> None:
    raise ValidationError(
        {"scopes": "A federated identity has its application's scopes; change the application's."},
        code="no_scopes",
    )


def federated_governed_kind() -> GovernedKind:
    """Return the governance description of federated identities (registered in TokensConfig.ready)."""
    return GovernedKind(
        key=FEDERATED_KIND,
        label="Federated identity",
        lifecycle=FEDERATED,
        audit_prefix="tokens.federated_identity",
        model=FederatedIdentity,
        touch_field="updated_at",
        ref_attr="public_id",
        url_kwarg="identity_id",
        lookup_field="pk",
        url_name="org-federated",
        issue_url_name="org-federated-activate",
        inventory_queryset=federated_identities_inventory,
        # A trust has no scopes of its own (reviews and scope requests do not apply); the
        # inventory shows its application's, which are what its tokens carry.
        scopes_of=lambda identity: [],
        scopes_for=_federated_scopes_for,
        set_scopes=_federated_set_scopes,
        issue_secret=_activate_federated_identity,
        revoke=lambda identity, actor, reason: federated_identity_revoke(identity=identity, actor=actor),
        # The token endpoint and token checks read the trust's status on every request.
        changed=lambda identity: None,
        filter_scope=lambda qs, scope: qs.filter(application__allowed_scopes__name=scope),
        # Approval of new ones, review interval: the organisation's M2M application settings.
        policy_key="m2m_app",
        webhook_events={
            "created": "created",
            "secret_issued": "created",
            "revoked": "revoked",
            "suspended": "suspended",
            "orphaned": "orphaned",
        },
    )
