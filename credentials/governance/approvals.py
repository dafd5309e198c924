"""Requests and approvals: a new credential or more scopes, decided by another manager (four eyes)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from credentials import lifetimes
from credentials.governance.common import audit_change, credential_audit, locked_credential, save_fields
from credentials.governance.edits import check_not_superseded, credential_policy_set
from credentials.governance.models import (
    CredentialRequest,
    CredentialStatus,
    RequestState,
    RequestType,
)
from credentials.governance.notices import notice_send_once
from credentials.governance.org_policy import (
    check_lifetime,
    policy_for,
    policy_locked,
    runtime_policy_for_new,
)
from credentials.governance.ownership import (
    check_owner_may_hold,
    is_manager,
    lock_membership,
    managers_of,
    may_manage,
)
from credentials.governance.registry import (
    GovernedKind,
    all_kinds,
    get_kind,
    kind_of,
    policy_key_of,
)
from credentials.policy import clean_rate_limit
from portal import authz
from portal.models import User
from portal.selectors import role_of
from portal.services.audit import audit_log

logger = logging.getLogger(__name__)


@transaction.atomic
def credential_request_create(
    *,
    credential: models.Model,
    requester: User,
    request_type: str,
    justification: str,
    requested_scopes: Iterable[str] = (),
    lifetime_days: int | None = None,
    allowed_ips: Iterable[str] = (),
    rate_limit: dict[str, int] | None = None,
    via: str = "",
) -> CredentialRequest:
    """Ask the organisation's approvers to create a pending credential or widen its scopes.

    For a scope increase the credential keeps its current scopes until the approval. A pending
    credential gets the runtime policy (`allowed_ips`, `rate_limit`) asked for with it now, so
    the approvers see it. `via` names the interface that filed it where the requester did not
    (`cli`: an operator, for the requester), in the audit event and the approvers' e-mail.
    """
    kind = kind_of(credential)
    justification = (justification or "").strip()
    if not justification:
        raise ValidationError({"justification": "Say why this is needed."}, code="justification")
    if request_type not in RequestType.values:
        raise ValidationError("Unknown request type.")
    # Locks in the order every write takes them: memberships, the policy row (its rules judge the
    # request), the credential. A scope increase locks its requester's membership (a removal
    # cancels their waiting requests after locking it); a new credential's request comes from
    # the service that created it, which locked its owner's membership already.
    if request_type == RequestType.SCOPE_INCREASE:
        lock_membership(credential.organization_id, requester.pk)
    policy_locked(credential.organization)
    credential = locked_credential(credential)
    scopes = sorted(set(requested_scopes))
    previous = sorted(kind.scopes_of(credential)) if request_type == RequestType.SCOPE_INCREASE else []
    if request_type == RequestType.SCOPE_INCREASE:
        if not may_manage(requester, credential, f"{kind.key}.scopes_widen"):
            raise ValidationError(
                "Only the owner or an organisation admin can ask for more scopes.", code="not_owner"
            )
        if credential.status != CredentialStatus.ACTIVE:
            raise ValidationError("Only an active credential can get more scopes.", code="inactive")
        _check_not_superseded(kind, credential)
        if not set(scopes) - set(previous):
            raise ValidationError(
                {"scopes": "Choose at least one scope it does not have yet."}, code="no_increase"
            )
        check_owner_may_hold(credential.organization, credential.owner, set(scopes) - set(previous))
    elif credential.status != CredentialStatus.PENDING:
        raise ValidationError("Only a pending credential can be requested.", code="not_pending")
    try:
        with transaction.atomic():
            request = CredentialRequest.objects.create(
                organization=credential.organization,
                kind=kind.key,
                object_id=credential.pk,
                credential_label=str(credential)[:255],
                request_type=request_type,
                requested_scopes=scopes,
                previous_scopes=previous,
                lifetime_days=lifetime_days,
                justification=justification[:2000],
                requester=requester,
                via="cli" if via == "cli" else "",
            )
    except IntegrityError:
        raise ValidationError("A request for this credential is already waiting.", code="pending") from None
    credential_audit(
        "credentials.request.created",
        credential,
        actor=requester,
        extra={
            "request_id": request.pk,
            "type": request_type,
            "scopes": scopes,
            "previous_scopes": previous,
            "lifetime_days": lifetime_days,
        },
        via=via,
    )
    allowed_ips = list(allowed_ips)
    if request_type == RequestType.CREATE:
        # The organisation's runtime rules, as for a credential created at once.
        rate_limit = runtime_policy_for_new(
            credential, allowed_ips=allowed_ips, rate_limit=clean_rate_limit(rate_limit)
        )
    if allowed_ips or rate_limit:
        credential_policy_set(
            credential=credential, actor=requester, allowed_ips=allowed_ips, rate_limit=rate_limit, via=via
        )
    notice_send_once(
        credential=credential,
        notice_type="approval_requested",
        period=f"request-{request.pk}",
        # Only those who may decide: the four-eyes rule refuses the requester and the credential's owner.
        recipients=[
            u.email
            for u in managers_of(credential.organization)
            if _four_eyes_allows(request, u.pk, owner_id=credential.owner_id)
        ],
        context={"request": request, "via": via},
    )
    return request


def _lock_request(request: CredentialRequest) -> CredentialRequest:
    return (
        CredentialRequest.objects.select_for_update(of=("self",))
        .select_related("organization", "requester")
        .get(pk=request.pk)
    )


def _check_approver(
    request: CredentialRequest, actor: User, linked_ids: Iterable[int] = (), *, owner_id: int | None = None
) -> None:
    if request.state != RequestState.PENDING:
        raise ValidationError(f"This request was already {request.state}.", code="decided")
    if actor is None or not actor.is_authenticated:
        raise ValidationError("Sign in to decide on requests.", code="anonymous")
    _check_four_eyes(request, actor.pk, linked_ids, owner_id=owner_id)
    if not (actor.is_staff or is_manager(actor, request.organization)):
        raise ValidationError("Only owners and admins of the organisation can decide.", code="not_approver")


def _check_four_eyes(
    request: CredentialRequest,
    decider_id: int,
    linked_ids: Iterable[int] = (),
    *,
    owner_id: int | None = None,
) -> None:
    """Refuse a decider the four-eyes rule excludes from deciding on `request`."""
    if request.requester_id == decider_id:
        # Four eyes: a requester, however privileged, never approves their own request.
        raise ValidationError("You cannot decide on your own request.", code="own_request")
    try:
        # ...nor through a credential they own, created or issued the secret of.
        authz.check_four_eyes(requester_id=request.requester_id, decider_id=decider_id, linked_ids=linked_ids)
    except authz.Refused as exc:
        raise ValidationError(exc.detail, code=exc.code) from None
    if owner_id is not None and owner_id in {decider_id, *linked_ids}:
        # ...nor by the credential's owner: taking a waiting credential over, then approving it,
        # would give its new owner a credential no second person decided on.
        raise ValidationError(
            "The credential is yours (or the deciding credential's owner's): someone else must decide.",
            code="four_eyes",
        )


def _four_eyes_allows(request: CredentialRequest, decider_id: int, *, owner_id: int | None) -> bool:
    """Return whether the four-eyes rule lets this person decide on `request` (who is asked to)."""
    try:
        _check_four_eyes(request, decider_id, owner_id=owner_id)
    except ValidationError:
        return False
    return True


def people_behind(principal) -> set[int]:
    """Return the people behind a deciding credential: owner, creator, issuers of its live secrets.

    Asked of every kind (`GovernedKind.people_behind`), so governance names none of them.
    """
    people: set[int] = set()
    for kind in all_kinds():
        people |= kind.people_behind(principal)
    people.discard(None)
    return people


def widens_itself(request: CredentialRequest, principal) -> bool:
    """Return whether approving `request` would widen the very credential `principal` presents.

    Asked of the request's kind (`GovernedKind.presented_ref`), like `people_behind`.
    """
    if request.request_type != RequestType.SCOPE_INCREASE:
        return False
    kind = get_kind(request.kind)
    ref = kind.presented_ref(principal)
    return (
        ref is not None and kind.model.objects.filter(pk=request.object_id, **{kind.ref_attr: ref}).exists()
    )


def _check_not_superseded(kind: GovernedKind, credential: models.Model) -> None:
    check_not_superseded(kind, credential, "Ask for more scopes on the successor.")


def credential_for_request(request: CredentialRequest) -> models.Model:
    """Return the credential a request is about."""
    return (
        get_kind(request.kind).model.objects.select_related("organization", "owner").get(pk=request.object_id)
    )


def _open_decision(
    request: CredentialRequest, actor: User, linked_ids: Iterable[int]
) -> tuple[CredentialRequest, GovernedKind, models.Model]:
    """Lock a request and its credential for a decision by `actor`; return them with the kind."""
    request = _lock_request(request)
    # The policy row before the credential (memberships, policy, credentials): approving a new
    # credential is judged by the policy on kinds (`kind.check_new`), and a runtime-policy change
    # of the waiting credential locks the policy row, then the credential.
    policy_locked(request.organization)
    credential = locked_credential(credential_for_request(request))
    _check_approver(request, actor, linked_ids, owner_id=credential.owner_id)
    return request, get_kind(request.kind), credential


@transaction.atomic
def credential_request_approve(
    *, request: CredentialRequest, actor: User, comment: str = "", linked_ids: Iterable[int] = ()
) -> CredentialRequest:
    """Approve a request: a new credential may now get its secret; a scope increase takes effect."""
    request, kind, credential = _open_decision(request, actor, linked_ids)
    if request.request_type == RequestType.CREATE:
        # The policy on kinds may have changed since the request was made; and the secret's
        # issue will apply today's maximum lifetime to the lifetime requested.
        kind.check_new(credential, request.lifetime_days)
        if request.lifetime_days:
            expires_at = lifetimes.expiry_in_days(request.lifetime_days)
            check_lifetime(credential.organization, policy_key_of(kind.key), expires_at)
    if request.request_type == RequestType.SCOPE_INCREASE:
        if credential.status != CredentialStatus.ACTIVE:
            raise ValidationError("The credential is no longer active.", code="inactive")
        # Rotated since the request: the scopes would widen the key being retired, not the one
        # in use. Deny it; the requester asks again for the successor.
        _check_not_superseded(kind, credential)
        # The request's change, applied to the scopes as they are now: a scope removed since
        # the request (a review, a leak) is not given back by approving something else.
        current = set(kind.scopes_of(credential))
        requested, previous = set(request.requested_scopes), set(request.previous_scopes)
        scopes = sorted((current - (previous - requested)) | (requested - previous))
        check_owner_may_hold(credential.organization, credential.owner, set(scopes) - current)
        kind.set_scopes(credential, scopes)
        kind.changed(credential)
    return _record_decision(request, credential, actor=actor, comment=comment, state=RequestState.APPROVED)


@transaction.atomic
def credential_request_deny(
    *, request: CredentialRequest, actor: User, comment: str = "", linked_ids: Iterable[int] = ()
) -> CredentialRequest:
    """Deny a request: a new credential is marked denied (it never gets a secret); scopes stay as they are."""
    request, kind, credential = _open_decision(request, actor, linked_ids)
    if request.request_type == RequestType.CREATE and credential.status == CredentialStatus.PENDING:
        credential.status = CredentialStatus.DENIED
        save_fields(credential, kind, "status")
    return _record_decision(request, credential, actor=actor, comment=comment, state=RequestState.DENIED)


@transaction.atomic
def credential_request_cancel(*, request: CredentialRequest, actor: User) -> CredentialRequest:
    """Withdraw your own waiting request.

    A new credential is closed without ever getting a secret (status `denied`, the state a
    refused request leaves; the request itself says `cancelled`); a scope increase simply
    lapses. Only the requester may cancel, and only while nobody has decided.
    """
    request = _lock_request(request)
    if request.state != RequestState.PENDING:
        raise ValidationError(f"This request was already {request.state}.", code="decided")
    if actor is None or not actor.is_authenticated or request.requester_id != actor.pk:
        raise ValidationError("Only the person who made a request can cancel it.", code="not_requester")
    return locked_request_cancel(request, actor=actor, extra={})


def waiting_requests_locked(credentials: Iterable) -> list[CredentialRequest]:
    """Lock and return the requests still waiting about `credentials`, oldest first.

    Before the credentials themselves, as a decision locks its request, then its credential: a
    revocation that closes them (`locked_request_cancel`) takes them in the same order.
    """
    about = models.Q()
    for credential in credentials:
        about |= models.Q(kind=kind_of(credential).key, object_id=credential.pk)
    if not about:
        return []
    return list(
        CredentialRequest.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(about, state=RequestState.PENDING)
        .order_by("pk")
    )


def locked_request_cancel(
    request: CredentialRequest, *, actor: User | None, extra: dict
) -> CredentialRequest:
    """Close a waiting request the caller has locked as cancelled, audited with `extra` (why, by
    whom: a withdrawal, a member leaving, the credential revoked); a new credential it asked for
    ends `denied`."""
    kind = get_kind(request.kind)
    credential = locked_credential(credential_for_request(request))
    if request.request_type == RequestType.CREATE and credential.status == CredentialStatus.PENDING:
        credential.status = CredentialStatus.DENIED
        save_fields(credential, kind, "status")
    request.state = RequestState.CANCELLED
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decided_by", "decided_at", "updated_at"])
    audit_log(
        action="credentials.request.cancelled",
        actor=actor,
        organization=request.organization,
        target=credential,
        extra={"request_id": request.pk, "type": request.request_type, **extra},
    )
    return request


def credential_requests_close_for_leaver(*, organization, user: User, actor: User | None) -> int:
    """Cancel the waiting requests a departing member made, and those for new credentials of theirs.

    Left waiting, an approver could still grant them, and the person, rejoining, would get what
    was decided about their former membership (only a credential's owner generates its secret).
    Called inside the removal's transaction; return how many were cancelled.
    """
    waiting = CredentialRequest.objects.filter(organization=organization, state=RequestState.PENDING)
    theirs = {request.pk for request in waiting.filter(requester=user)}
    for kind in all_kinds():
        owned = kind.model.objects.filter(
            organization=organization, owner=user, status=CredentialStatus.PENDING
        ).values("pk")
        asked_for_theirs = waiting.filter(kind=kind.key, request_type=RequestType.CREATE, object_id__in=owned)
        theirs |= set(asked_for_theirs.values_list("pk", flat=True))
    closed = 0
    for pk in sorted(theirs):
        request = _lock_request(CredentialRequest(pk=pk))
        if request.state == RequestState.PENDING:
            locked_request_cancel(request, actor=actor, extra={"reason": "member_left", "member": user.email})
            closed += 1
    return closed


def _record_decision(
    request: CredentialRequest, credential, *, actor: User, comment: str, state: str
) -> CredentialRequest:
    """Store an approval or a denial, audit it once and notify the requester and the owner."""
    request.state = state
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.comment = (comment or "").strip()[:500]
    request.save(update_fields=["state", "decided_by", "decided_at", "comment", "updated_at"])
    audit_log(
        action=f"credentials.request.{RequestState(state).value}",
        actor=actor,
        organization=request.organization,
        target=credential,
        extra={"request_id": request.pk, "type": request.request_type, "comment": request.comment},
    )
    _notify_decision(request, credential)
    return request


def _notify_decision(request: CredentialRequest, credential) -> None:
    # The requester and the owner, each while still a member: someone gone hears nothing more.
    people = (request.requester, credential.owner)
    recipients = {
        u.email for u in people if u is not None and role_of(u.pk, request.organization_id) is not None
    }
    notice_send_once(
        credential=credential,
        notice_type=f"approval_{request.state}",
        period=f"request-{request.pk}",
        recipients=sorted(recipients),
        context={"request": request},
    )


def approved_create_request(credential: models.Model) -> CredentialRequest | None:
    """Return the approved request that created a pending credential, if there is one."""
    return CredentialRequest.objects.filter(
        kind=kind_of(credential).key,
        object_id=credential.pk,
        request_type=RequestType.CREATE,
        state=RequestState.APPROVED,
    ).first()


def activation_request(credential: models.Model) -> CredentialRequest:
    """Return the approved request that lets a pending credential become active, or refuse.

    Asked by each write that activates one, under the credential's row lock: its first secret
    (`credential_secret_issue`) and a `private_key_jwt` application's first public key
    (`client_public_key_add`), so neither activates what the other would refuse.
    """
    if credential.orphaned_at is not None:
        # Approved for a membership that ended (credential_requests_close_for_leaver closes only
        # what still waits): a person who rejoins does not collect it; an admin reassigns it.
        raise ValidationError(
            "Its owner left the organisation since it was approved; an admin must give it an owner first.",
            code="orphaned",
        )
    approved = approved_create_request(credential)
    if approved is None:
        raise ValidationError("This credential is still waiting for approval.", code="not_approved")
    return approved


@transaction.atomic
def credential_secret_issue(*, credential: models.Model, actor: User) -> tuple[models.Model, str]:
    """Give an approved, pending credential its first secret, once; only its owner may do this.

    Return the credential and the plaintext, which is never stored and never shown again.
    """
    kind = kind_of(credential)
    # The policy row before the credential (memberships, policy, credentials): the secret is
    # issued under the policy on kinds as it is now (`kind.issue_secret`).
    policy_locked(credential.organization)
    credential = locked_credential(credential)
    if credential.owner_id != getattr(actor, "pk", None):
        raise ValidationError("Only the credential's owner can generate its secret.", code="not_owner")
    if credential.status == CredentialStatus.DENIED:
        # Closed without a secret: revoked after its approval (withdrawn), or its request denied
        # or cancelled. Either way no secret was ever generated, and none will be.
        if approved_create_request(credential) is not None:
            raise ValidationError(
                "This credential was withdrawn before its secret was generated.", code="withdrawn"
            )
        raise ValidationError(
            "This credential's request was denied or cancelled: it never gets a secret.", code="denied"
        )
    if credential.status != CredentialStatus.PENDING:
        raise ValidationError("The secret was already generated.", code="issued")
    approved = activation_request(credential)
    policy = policy_for(credential.organization)
    plaintext, extra = kind.issue_secret(credential, actor, approved)
    credential.status = CredentialStatus.ACTIVE
    credential.review_due_at = timezone.now() + policy.review_interval(kind.key)
    carried = kind.carried_review_due(credential)
    if carried is not None and carried < credential.review_due_at:
        credential.review_due_at = carried  # a move is no review: it keeps what was due
    save_fields(credential, kind, "status", "review_due_at")
    audit_change(
        kind,
        "secret_issued",
        credential=credential,
        actor=actor,
        extra={"request_id": approved.pk, "type": approved.request_type, **extra},
    )
    kind.changed(credential)
    return credential, plaintext
