"""Move an API key to an M2M application that takes over from it (docs/choosing.md)."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from credentials.api_keys.models import ApiKey
from credentials.governance import org_policy, ownership
from credentials.governance.common import credential_audit
from credentials.governance.models import CredentialRequest, CredentialState
from credentials.insight.services import scope_use_carry_over
from credentials.leaks.models import LeakReport
from portal.models import User
from tokens.clients.services import m2m_app_create, m2m_app_request
from tokens.models import (
    M2MApplication,
)


@dataclass(frozen=True)
class Move:
    """The outcome of moving an API key to an M2M application."""

    api_key: ApiKey
    application: M2MApplication
    #: The one-time client secret; None while the application waits for approval.
    client_secret: str | None
    request: CredentialRequest | None = None

    @property
    def pending(self) -> bool:
        """Return whether the application waits for an approval before it gets a secret."""
        return self.client_secret is None

    def summary(self) -> dict:
        """Return what the REST answer and `move_api_key_to_m2m_app --json` both say of the move."""
        application = self.application
        return {
            "id": application.pk,
            "client_id": application.client_id,
            "client_secret": self.client_secret,
            "status": application.status,
            "key_id": self.api_key.key_id,
            "environment": application.environment,
            "scopes": sorted(application.allowed_scopes.values_list("name", flat=True)),
        }


def _policy_of(key: ApiKey) -> tuple[list[str], dict[str, int] | None]:
    """Return the key's runtime policy as (allowlist, rate limit)."""
    return list(key.allowed_ips or []), key.rate_limit or None


@transaction.atomic
def api_key_move_to_m2m_app(
    *,
    api_key: ApiKey,
    actor: User | None,
    name: str = "",
    justification: str = "",
    via: str = "",
) -> Move:
    """Create an M2M application that takes over from an API key: same owner, scopes and environment.

    The application goes through the same approval rules as any new one: where the
    organisation approves new applications it is created pending, without a secret (its
    owner generates the secret once it is approved). The key is not touched: it keeps
    working until someone revokes it. The key's row lock and the unique `moved_from_key`
    column leave one application under concurrent moves. Both credentials get an audit event
    naming the other (`moved_to` / `moved_from`); `via` names the interface or credential that
    moved the key (`api_key:…`, `cli`, `dashboard`), on each of the move's events.

    `api_key` is the key as its caller authorised the move against (its owner, scopes and
    runtime policy): a change to any of them that committed since is refused (`conflict`),
    not carried over to an application the caller was never allowed to create.
    """
    # The application gets the key's owner: their membership first, so a removal orphans it too.
    owner_id = ownership.lock_owner_before(api_key)
    # Then the policy (org_policy.policy_locked), before any credential: the new application is
    # judged by the policy as it is, and a policy change waits (it flags credentials it locks).
    org_policy.policy_locked(api_key.organization)
    key = (
        ApiKey.objects.select_for_update(of=("self",))
        .select_related("organization", "owner")
        .get(pk=api_key.pk)
    )
    ownership.check_owner_unchanged(key, owner_id)
    if sorted(key.scopes) != sorted(api_key.scopes) or _policy_of(key) != _policy_of(api_key):
        # The application copies the key as locked; the caller (a credential no wider than the
        # key, move_api) was authorised against the key as read.
        raise ValidationError(
            "The key's scopes or runtime policy changed meanwhile; try again.", code="conflict"
        )
    if key.state != CredentialState.ACTIVE:
        raise ValidationError(
            f"This key is {key.state}; only an active key can be moved to an M2M application.",
            code="inactive",
        )
    if key.rotated_at is not None:
        raise ValidationError(
            "This key was rotated and stops after its overlap; move its successor instead.", code="rotated"
        )
    if LeakReport.objects.filter(kind="api_key", object_id=key.pk).exists():
        # Its secret is public (a key restored after a leak report): a move would keep it working
        # through an open-ended cut-over, and then refuse the zero-overlap rotation the leak
        # notice asks for (`moved`), as rotation refuses an overlap (api_key_rotate).
        raise ValidationError(
            "This key's secret was reported leaked in public: rotate it with no overlap (or revoke "
            "it), then move its successor.",
            code="leaked",
        )
    already = M2MApplication.objects.select_for_update(of=("self",)).filter(moved_from_key=key).first()
    if already is not None and already.status == M2MApplication.Status.DENIED:
        # Its request was denied or withdrawn: it never existed in practice, and the key may be
        # moved again. The denied application keeps its history, no longer linked to the key.
        already.moved_from_key = None
        already.save(update_fields=["moved_from_key", "updated"])
        already = None
    if already is not None:
        raise ValidationError(
            f"This key was already moved to the M2M application {already.name} ({already.client_id}).",
            code="moved",
        )
    if key.owner is None:
        raise ValidationError("This key has no owner; give it one before moving it.", code="no_owner")
    organization = key.organization
    fields = {
        "organization": organization,
        "name": (name or "").strip() or key.name,
        "owner": key.owner,
        "scopes": list(key.scopes),
        "description": f"Moved from API key {key.display_prefix}",
        "moved_from_key": key,
        # The same integration under review as before: a key overdue for review does not escape
        # it by moving (its date is kept when earlier than the policy's), as a rotation keeps it.
        "review_due_at": key.review_due_at,
        "last_reviewed_at": key.last_reviewed_at,
        "last_reviewed_by": key.last_reviewed_by,
    }
    # The replacement is no wider than the key: where it may be used from, and how often.
    allowed_ips, rate_limit = _policy_of(key)
    policy = {"allowed_ips": allowed_ips, "rate_limit": rate_limit}
    request = None
    plaintext = None
    try:
        with transaction.atomic():
            if org_policy.approval_required(organization, "m2m_app"):
                # The request is made by whoever moves the key; from the CLI, for its owner (the
                # audit event and the approvers' e-mail say so: `via`).
                requester = actor if actor is not None and actor.is_authenticated else key.owner
                application, request = m2m_app_request(
                    requester=requester,
                    via=via,
                    justification=(justification or "").strip()
                    or f"Moving the API key {key.display_prefix} ({key.name}) to an M2M application.",
                    **policy,
                    **fields,
                )
            else:
                application, plaintext = m2m_app_create(actor=actor, via=via, **policy, **fields)
    except IntegrityError as exc:  # the unique moved_from_key: another move won
        raise ValidationError("This key was already moved to an M2M application.", code="moved") from exc
    # The key's scope use goes with the integration, as a rotation carries it to the successor, so
    # "Narrow to what is used" does not take from the application a scope the key needed (a
    # pending application gets the key's use since then with its first secret: tokens.clients.services).
    scope_use_carry_over(
        organization_id=organization.pk,
        from_kind="api_key",
        from_ref=key.key_id,
        to_kind="m2m_app",
        to_ref=application.client_id,
    )
    credential_audit(
        "credentials.api_key.moved",
        key,
        actor=actor,
        extra={
            "key_id": key.key_id,
            "moved_to": application.client_id,
            "application_id": application.pk,
            "pending_approval": request is not None,
        },
        via=via,
    )
    credential_audit(
        "tokens.m2m_app.moved",
        application,
        actor=actor,
        extra={"client_id": application.client_id, "moved_from": key.key_id, "api_key_id": key.pk},
        via=via,
    )
    return Move(api_key=key, application=application, client_secret=plaintext, request=request)
