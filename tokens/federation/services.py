"""Writes for federated identities (workload identity federation): trust an issuer, remove a trust."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from credentials.governance import approvals, org_policy, ownership
from credentials.governance.common import LIVE_STATUSES, credential_audit
from credentials.governance.models import CredentialRequest, RequestType
from portal.models import User
from tokens.federation import trust
from tokens.models import (
    MAX_FEDERATED_TOKEN_AGE,
    MIN_FEDERATED_TOKEN_AGE,
    FederatedIdentity,
    M2MApplication,
)

FEDERATED_KIND = "federated_id"


@transaction.atomic
def federated_identity_create(
    *,
    application: M2MApplication,
    actor: User | None,
    issuer: str,
    subject: str,
    audience: str = "",
    conditions=None,
    max_token_age: int | None = None,
    preset: str = FederatedIdentity.Preset.CUSTOM,
    jwks=None,
    name: str = "",
    owner: User | None = None,
    justification: str = "",
    via: str = "",
) -> tuple[FederatedIdentity, CredentialRequest | None]:
    """Trust an external issuer's tokens for an application; return the trust and its approval request.

    When the organisation requires approval for new M2M credentials (and a person asks), the
    trust waits as `pending` with a request; its owner activates it once approved. A command
    run by an operator (`actor` None) creates it active, as `create_m2m_app` does. `via` names
    the interface in the audit event (`cli`, `dashboard`), as for the other kinds.
    """
    # The trust's owner (the application's, by default): their membership before the application,
    # so a removal racing this orphans the trust too (ownership.lock_membership).
    if owner is not None:
        ownership.lock_membership(application.organization_id, owner.pk)
    else:
        app_owner_id = ownership.lock_owner_before(application)
    # Then the policy row, before the application (memberships, policy, credentials): the policy
    # decides whether the trust waits for approval, and its request locks the row again.
    org_policy.policy_locked(application.organization)
    application = (
        M2MApplication.objects.select_for_update(of=("self",))
        .select_related("organization", "owner")
        .get(pk=application.pk)
    )
    if owner is None:
        ownership.check_owner_unchanged(application, app_owner_id)
    organization = application.organization
    if not application.is_active:
        raise ValidationError("Only an active application can trust an external issuer.")
    # An operator's command (`actor` None) may; a person: the application's owner or a manager.
    if actor is not None and not ownership.may_manage(actor, application, f"{FEDERATED_KIND}.create"):
        raise ValidationError(
            "Only the application's owner or an organisation admin can add a trust.", code="not_owner"
        )
    if preset not in FederatedIdentity.Preset.values:
        raise ValidationError({"preset": "Choose one of the presets or a custom issuer."})
    owner = owner or application.owner
    ownership.check_owner_is_member(organization, owner)
    # Its tokens carry the application's scopes and act for the trust's owner too: a member may not
    # own a trust whose tokens would hold a manager's scope (as for a key or an application).
    ownership.check_owner_may_hold(
        organization, owner, application.allowed_scopes.values_list("name", flat=True)
    )
    static_jwks = trust.clean_jwks(jwks)
    issuer = trust.clean_issuer(issuer, has_jwks=static_jwks is not None)
    _check_room_for_trust(application, issuer)
    subject = trust.clean_subject(subject, preset, issuer)
    conditions = trust.clean_conditions(conditions or {})
    audience = (audience or "").strip() or settings.PORTAL_ISSUER
    if len(audience) > 255:
        raise ValidationError({"audience": "The audience is too long."})
    found = trust.PRESETS.get(preset)
    if max_token_age is None:
        max_token_age = (
            found.max_token_age if found else FederatedIdentity._meta.get_field("max_token_age").default
        )
    if not MIN_FEDERATED_TOKEN_AGE <= max_token_age <= MAX_FEDERATED_TOKEN_AGE:
        raise ValidationError(
            {"max_token_age": f"Use between {MIN_FEDERATED_TOKEN_AGE} and {MAX_FEDERATED_TOKEN_AGE} seconds."}
        )
    name = (name or "").strip()
    if len(name) > 255:  # refused, as the dashboard's form and the other commands refuse it
        raise ValidationError({"name": "Use at most 255 characters."}, code="max_length")
    name = name or f"{found.label if found else 'Trust'}: {subject}"[:255]
    needs_approval = actor is not None and org_policy.approval_required(organization, FEDERATED_KIND)
    identity = FederatedIdentity.objects.create(
        organization=organization,
        application=application,
        owner=owner,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        name=name,
        preset=preset,
        issuer=issuer,
        jwks=static_jwks,
        audience=audience,
        subject=subject,
        conditions=conditions,
        max_token_age=max_token_age,
        status=FederatedIdentity.Status.PENDING if needs_approval else FederatedIdentity.Status.ACTIVE,
        review_due_at=None if needs_approval else org_policy.review_due_from(organization, FEDERATED_KIND),
    )
    credential_audit(
        "tokens.federated_identity.created",
        identity,
        actor=actor,
        extra={
            "id": identity.public_id,
            "client_id": application.client_id,
            "owner": owner.email,
            "preset": preset,
            "issuer": issuer,
            "subject": subject,
            "audience": audience,
            "conditions": conditions,
            "max_token_age": max_token_age,
            "static_jwks": static_jwks is not None,
        },
        via=via,
    )
    request = None
    if needs_approval:
        request = approvals.credential_request_create(
            credential=identity,
            requester=actor,
            request_type=RequestType.CREATE,
            justification=justification,
            via=via,
        )
    return identity, request


def _check_room_for_trust(application: M2MApplication, issuer: str) -> None:
    """Refuse a trust beyond the application's MAX_TRUSTS_PER_ISSUER live ones for `issuer`.

    The token endpoint tries that many (`trust._trusts`): one more would show active, pass "Test
    a token", and never authenticate. The caller holds the application's row lock, so two
    creations racing at the limit count one after the other.
    """
    live = FederatedIdentity.objects.filter(application=application, issuer=issuer, status__in=LIVE_STATUSES)
    if live.count() >= trust.MAX_TRUSTS_PER_ISSUER:
        raise ValidationError(
            {
                "issuer": ValidationError(
                    f"This application already has {trust.MAX_TRUSTS_PER_ISSUER} trusts of this issuer, the "
                    "most it may have. Remove one, trust several workloads with one wildcard subject "
                    "where the platform allows it (system:serviceaccount:ci:*, say), or use another "
                    "application.",
                    code="too_many_trusts",
                )
            }
        )


@transaction.atomic
def federated_identity_revoke(*, identity: FederatedIdentity, actor: User | None) -> FederatedIdentity:
    """Remove a trust at once: its tokens are refused and the tokens it minted stop validating."""
    identity = (
        FederatedIdentity.objects.select_for_update(of=("self",))
        .select_related("organization", "application")
        .get(pk=identity.pk)
    )
    if identity.status == FederatedIdentity.Status.REVOKED:
        raise ValidationError("This trust is already removed.")
    if identity.status in (FederatedIdentity.Status.PENDING, FederatedIdentity.Status.DENIED):
        raise ValidationError("This trust was never active; deny or cancel its request instead.")
    identity.status = FederatedIdentity.Status.REVOKED
    identity.revoked_at = timezone.now()
    identity.suspended_at = None
    identity.suspension_reason = ""
    identity.save(update_fields=["status", "revoked_at", "suspended_at", "suspension_reason", "updated_at"])
    credential_audit(
        "tokens.federated_identity.revoked",
        identity,
        actor=actor,
        extra={"id": identity.public_id, "client_id": identity.application.client_id},
    )
    return identity
