"""Organisations, memberships and invitations: every change writes one audit event."""

from __future__ import annotations

import logging
import secrets
import unicodedata
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.mail.message import sanitize_address
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import punycode
from django.views.decorators.debug import sensitive_variables

from portal.infra.crypto import keyed_digest, peppers
from portal.models import MANAGER_ROLES, Invitation, Membership, MfaRequirement, Organization, Role, User
from portal.selectors import authority_memberships
from portal.services.audit import audit_log
from portal.signals import member_removed

logger = logging.getLogger(__name__)


def _audit(
    action: str, target: Membership | Invitation, *, actor: User | None, extra: dict[str, Any] | None = None
) -> None:
    """Write the audit event of a change to a membership or an invitation, labelled with an email."""
    label = target.email if isinstance(target, Invitation) else target.user.email
    audit_log(
        action=action,
        actor=actor,
        organization=target.organization,
        target=target,
        target_label=label,
        extra=extra,
    )


@transaction.atomic
def organization_create(*, slug: str, name: str, owner: User, actor: User | None) -> Organization:
    """Create an organisation with `owner` as its first owner."""
    organization = Organization.objects.create(slug=slug, name=name)
    audit_log(
        action="portal.organization.created", actor=actor, organization=organization, target=organization
    )
    membership = Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    _audit("portal.membership.created", membership, actor=actor, extra={"role": Role.OWNER})
    return organization


def lock_owners(organization: Organization) -> list[Membership]:
    """Lock and return the organisation's owner memberships (inside the caller's transaction).

    Every demotion or removal takes this lock first, so two people (or the dashboard and the
    admin) cannot each remove "the other" last owner at the same time. The owners are read again
    once the lock is held: on PostgreSQL a statement that waited for a lock still reads the
    accounts joined to the rows as they stood when it began, so an owner switched off by the
    transaction it waited for would still count as one who can sign in.
    """
    owners = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(organization=organization, role=Role.OWNER)
        .order_by("pk")
    )
    list(owners.values_list("pk", flat=True))  # waits for the lock
    return list(owners)


def _check_manager_may_touch(*, actor_membership: Membership | None, role: str) -> None:
    if actor_membership is not None and actor_membership.role != Role.OWNER and role == Role.OWNER:
        raise ValidationError("Only an owner can grant, change or remove the owner role.", code="owner_only")


def _still_manager(actor_membership: Membership | None) -> Membership | None:
    """Re-read the acting manager's membership under the owners' lock (taken by the caller).

    The dashboard authorised the request with the role it read when the request began; a
    demotion or removal of the actor that committed meanwhile (it takes the same lock) wins.
    """
    if actor_membership is None:
        return None
    current = Membership.objects.filter(pk=actor_membership.pk).first()
    if current is None or current.role not in MANAGER_ROLES:
        raise ValidationError(
            "Your role in this organisation changed meanwhile: only owners and admins can do this.",
            code="not_manager",
        )
    return current


def _locked_membership(membership: Membership) -> Membership:
    """Lock and return a membership row afresh; a clear refusal when a concurrent request removed it."""
    locked = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user", "organization")
        .filter(pk=membership.pk)
        .first()
    )
    if locked is None:
        raise ValidationError("This person is no longer a member.", code="gone")
    return locked


def active_owners_left(owners: list[Membership], without: Membership) -> bool:
    """Return whether an owner who can sign in remains when `without` is no longer an owner."""
    return any(owner.pk != without.pk and owner.user.is_active for owner in owners)


def _revoke_invitations_beyond(membership: Membership, role: str | None, *, actor: User | None) -> None:
    """Revoke the open invitations `membership`'s person sent that `role` (None: gone) may not grant."""
    grantable = {None: (), Role.MEMBER: (), Role.ADMIN: (Role.ADMIN, Role.MEMBER)}.get(role, Role.values)
    invitations = Invitation.objects.select_for_update(of=("self",)).filter(
        organization_id=membership.organization_id,
        invited_by_id=membership.user_id,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
    )
    for invitation in invitations.exclude(role__in=grantable).select_related("organization"):
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at", "updated_at"])
        _audit("portal.invitation.revoked", invitation, actor=actor, extra={"reason": "inviter_lost_role"})


@transaction.atomic
def invitations_revoke_beyond(*, membership: Membership, role: str, actor: User | None) -> None:
    """Revoke the open invitations `membership`'s person sent that their new `role` may not grant.

    For a role saved outside `membership_change_role` (which does this itself): the organisation
    admin's inline, which checks its owners across the whole formset.
    """
    _revoke_invitations_beyond(membership, role, actor=actor)


@transaction.atomic
def user_invitations_revoke(*, user: User, actor: User | None) -> None:
    """Revoke the open invitations `user` sent, in every organisation (their account was switched off).

    A deactivated account lends no role, so `_check_inviter_may_grant` already refuses these
    invitations; revoking them also shows so on the members page and to whoever holds the link.
    """
    for membership in Membership.objects.filter(user=user):
        _revoke_invitations_beyond(membership, None, actor=actor)


@transaction.atomic
def membership_change_role(
    *, membership: Membership, role: str, actor: User, actor_membership: Membership | None = None
) -> Membership:
    """Change a member's role; an organisation always keeps at least one owner."""
    if role not in Role.values:
        raise ValidationError("Unknown role.", code="invalid_role")
    owners = lock_owners(membership.organization)
    actor_membership = _still_manager(actor_membership)
    membership = _locked_membership(membership)
    old_role = membership.role
    if old_role == role:
        return membership
    _check_manager_may_touch(actor_membership=actor_membership, role=old_role)
    _check_manager_may_touch(actor_membership=actor_membership, role=role)
    if old_role == Role.OWNER and not active_owners_left(owners, membership):
        raise ValidationError("The organisation's last owner cannot be demoted.", code="last_owner")
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    _audit("portal.membership.role_changed", membership, actor=actor, extra={"from": old_role, "to": role})
    _revoke_invitations_beyond(membership, role, actor=actor)
    return membership


@transaction.atomic
def membership_remove(
    *, membership: Membership, actor: User, actor_membership: Membership | None = None
) -> None:
    """Remove a member from the organisation; the last owner cannot be removed."""
    owners = lock_owners(membership.organization)
    # Only the membership row: locking the user and organisation rows too would deadlock with any
    # credential write of that organisation at its commit (its foreign-key checks share-lock them).
    membership = _locked_membership(membership)
    if membership.user_id != actor.pk:
        actor_membership = _still_manager(actor_membership)
        _check_manager_may_touch(actor_membership=actor_membership, role=membership.role)
    left = membership.user_id == actor.pk
    if membership.role == Role.OWNER and not active_owners_left(owners, membership):
        hint = " Make someone else an owner first, then leave." if left else ""
        raise ValidationError(f"The organisation's last owner cannot be removed.{hint}", code="last_owner")
    membership_delete(membership=membership, actor=actor, extra={"role": membership.role, "left": left})


@transaction.atomic
def membership_delete(*, membership: Membership, actor: User | None, extra: dict[str, Any]) -> None:
    """Delete a membership whose removal the caller has allowed, with one audit event.

    The member's credentials keep working but become orphaned until someone takes them over
    (docs/governance.md): `member_removed` lets credentials.governance mark them in this transaction.
    """
    member_removed.send(
        sender=Membership, organization=membership.organization, user=membership.user, actor=actor
    )
    _audit("portal.membership.removed", membership, actor=actor, extra=extra)
    _revoke_invitations_beyond(membership, None, actor=actor)
    membership.delete()


#: Invitation.email's length (EmailField's default), checked on the canonical form, which can be longer.
INVITATION_EMAIL_MAX_LENGTH = 254


def canonical_invitation_email(email: str) -> str:
    """Return the one spelling of the mailbox an address reaches, or refuse it (ValidationError).

    Mail is addressed through IDNA (Django's `sanitize_address`), which folds full-width letters
    and drops invisible characters, so `owner@ａcme.test` reaches `owner@acme.test`: stored and
    compared as typed, such a look-alike would pass "already a member" and become a second account
    that reads as the first. So: refuse format characters (Unicode category Cf, such as a
    zero-width space: nothing a person can see or check), then NFKC and lower case, then the
    domain as mail encodes it (`straße.test` is mailed to `strasse.test`). A plain ASCII address
    is only lower-cased, as before. The result is validated again (lower case can make an address
    invalid: `İ` becomes `i` and a combining dot) and must encode for the mail layer.
    """
    hidden = sorted({char for char in email if unicodedata.category(char) == "Cf"})
    if hidden:
        names = ", ".join(f"U+{ord(char):04X} {unicodedata.name(char, '?')}" for char in hidden)
        raise ValidationError(
            f"This address contains an invisible character ({names}); type it again without it.",
            code="invisible_character",
        )
    email = unicodedata.normalize("NFKC", email).lower()
    local, at, domain = email.rpartition("@")
    if not at or not local.isascii():
        raise ValidationError(
            "Enter a valid email address (before the @: ASCII letters, digits and punctuation only).",
            code="invalid",
        )
    if not domain.isascii():
        try:
            # As the mail layer encodes it, and back: the mailbox that is actually reached.
            domain = punycode(domain).encode("ascii").decode("idna")
        except (UnicodeError, ValueError):
            raise ValidationError(
                "This address's domain cannot be encoded for e-mail (each part of an international "
                "domain name may be at most 63 characters once encoded).",
                code="domain_not_encodable",
            ) from None
        email = f"{local}@{domain}"
    if len(email) > INVITATION_EMAIL_MAX_LENGTH:
        raise ValidationError(
            f"Ensure this address has at most {INVITATION_EMAIL_MAX_LENGTH} characters "
            f"(it has {len(email)} once normalised).",
            code="max_length",
        )
    validate_email(email)
    try:
        sanitize_address(("", email), "utf-8")
    except (UnicodeError, ValueError):
        raise ValidationError(
            "This address cannot be encoded for e-mail.", code="domain_not_encodable"
        ) from None
    return email


def _token_digests(token: str) -> list[str]:
    _, table = peppers()
    return [keyed_digest(token, pepper_id=pepper_id)[1] for pepper_id in table]


@transaction.atomic
def invitation_create(
    *,
    organization: Organization,
    email: str,
    role: str,
    actor: User,
    actor_membership: Membership | None = None,
) -> tuple[Invitation, str]:
    """Invite `email` to the organisation and email the link; return the invitation and its one-time token.

    The address is stored in its canonical form (`canonical_invitation_email`), or refused.
    """
    try:
        email = canonical_invitation_email(email)
    except ValidationError as exc:
        raise ValidationError({"email": exc}) from None
    if role not in Role.values:
        raise ValidationError({"role": "Unknown role."})
    _check_manager_may_touch(actor_membership=actor_membership, role=role)
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise ValidationError({"email": "This person is already a member."})
    # An expired invitation still holds the address's one open slot; it is closed, not left to
    # block a new one (nothing else can close it: resend and revoke take open ones only).
    expired = Invitation.objects.select_for_update(of=("self",)).filter(
        organization=organization,
        email=email,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__lte=timezone.now(),
    )
    for stale in expired:
        stale.revoked_at = timezone.now()
        stale.save(update_fields=["revoked_at", "updated_at"])
        _audit("portal.invitation.revoked", stale, actor=actor, extra={"reason": "expired"})
    token = secrets.token_urlsafe(32)
    pepper_id, digest = keyed_digest(token)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                organization=organization,
                email=email,
                role=role,
                invited_by=actor,
                token_digest=digest,
                pepper_id=pepper_id,
                expires_at=timezone.now() + timedelta(hours=settings.PORTAL_INVITATION_TTL_HOURS),
            )
    except IntegrityError:
        raise ValidationError({"email": "An open invitation for this address already exists."}) from None
    _audit("portal.invitation.created", invitation, actor=actor, extra={"role": role})
    _send_invitation(invitation, token, actor)
    return invitation, token


def invitation_link(token: str) -> str:
    """Return the absolute link that accepts an invitation (its token is in it: show it once)."""
    return settings.PORTAL_BASE_URL + reverse("invitation-accept", kwargs={"token": token})


def _send_invitation(invitation: Invitation, token: str, actor: User) -> None:
    organization = invitation.organization
    body = render_to_string(
        "portal/email/invitation.txt",
        {
            "organization": organization,
            "inviter": actor,
            "link": invitation_link(token),
            "invitation": invitation,
        },
    )
    # One line: a mail header refuses a line break (BadHeaderError).
    subject = " ".join(f"You are invited to {organization.name} on Identity Portal".split())
    # Sent after commit so a rolled-back invitation sends nothing.
    transaction.on_commit(lambda: _mail_invitation(invitation.pk, subject, body, invitation.email))


def _mail_invitation(invitation_id: int, subject: str, body: str, address: str) -> None:
    """Send an invitation's e-mail; a failure is logged, never raised into the committed request.

    `fail_silently` covers the connection only: an address the mail layer cannot encode raises
    while the message is built. The inviter can still copy the link ("Resend and copy link").
    """
    try:
        send_mail(subject, body, None, [address], fail_silently=True)
    except Exception as exc:  # noqa: BLE001  the invitation is committed: nothing here may undo the answer
        # Neither the body (it holds the link, a secret) nor the message (it may quote the address).
        logger.warning("Invitation %s: its e-mail could not be sent (%s).", invitation_id, type(exc).__name__)


@transaction.atomic
def invitation_resend(
    *, invitation: Invitation, actor: User, actor_membership: Membership | None = None
) -> tuple[Invitation, str]:
    """Give an open invitation a new link and a fresh expiry, and email it again.

    The old link stops working (only the new token's digest is kept); return the invitation and
    the new one-time token, so the inviter can also copy the link.
    """
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=invitation.pk)
    )
    if not invitation.is_open:
        raise ValidationError("This invitation is no longer open.", code="not_open")
    _check_manager_may_touch(actor_membership=actor_membership, role=invitation.role)
    token = secrets.token_urlsafe(32)
    invitation.pepper_id, invitation.token_digest = keyed_digest(token)
    invitation.expires_at = timezone.now() + timedelta(hours=settings.PORTAL_INVITATION_TTL_HOURS)
    invitation.save(update_fields=["pepper_id", "token_digest", "expires_at", "updated_at"])
    _audit("portal.invitation.resent", invitation, actor=actor, extra={"role": invitation.role})
    _send_invitation(invitation, token, actor)
    return invitation, token


@transaction.atomic
def invitation_revoke(
    *, invitation: Invitation, actor: User, actor_membership: Membership | None = None
) -> Invitation:
    """Revoke an open invitation (an owner's invitation: owners only, as granting the role)."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_open:
        raise ValidationError("This invitation is no longer open.", code="not_open")
    _check_manager_may_touch(actor_membership=actor_membership, role=invitation.role)
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at", "updated_at"])
    _audit("portal.invitation.revoked", invitation, actor=actor)
    return invitation


def invitation_for_token(token: str) -> Invitation | None:
    """Return the invitation a token belongs to (open or not), or None."""
    if not token or len(token) > 100:
        return None
    return (
        Invitation.objects.select_related("organization")
        .filter(token_digest__in=_token_digests(token))
        .first()
    )


def _locked_invitation(token: str) -> Invitation | None:
    """Lock the invitation `token` opens, after its inviter's membership; None if it opens none.

    The inviter's row first, as a role change or a removal takes them (the membership, then that
    person's invitations). Under the lock the token must still be the invitation's: a resend
    replaces the link, and the old one must not win a race with it.
    """
    found = invitation_for_token(token)
    if found is None:
        return None
    if found.invited_by_id is not None:
        Membership.objects.select_for_update(of=("self",), no_key=True).filter(
            organization_id=found.organization_id, user_id=found.invited_by_id
        ).values_list("pk", flat=True).first()
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(pk=found.pk)
        .first()
    )
    if invitation is None or invitation.token_digest not in _token_digests(token):
        return None
    return invitation


#: Why an invitation can no longer be accepted, by its state (the codes of the refusals).
_INVITATION_CLOSED = {
    "accepted": "This invitation was already accepted.",
    "revoked": "This invitation was withdrawn.",
    "expired": "This invitation has expired.",
}


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """Accept an invitation once: create the membership for `user`, whose email must match.

    Accepting again as the person who accepted it (a double click, the form sent twice) returns
    their membership and writes nothing; anyone else is refused.
    """
    invitation = _locked_invitation(token)
    if invitation is None:
        raise ValidationError("This invitation link is not valid.", code="invalid")
    if invitation.accepted_at is not None and invitation.accepted_by_id == user.pk:
        # Only while they are still a member: once they have left or been removed, the old link
        # does not bring them back.
        membership = (
            Membership.objects.select_related("organization")
            .filter(user=user, organization_id=invitation.organization_id)
            .first()
        )
        if membership is not None:
            return membership
    if not invitation.is_open:
        raise ValidationError(_INVITATION_CLOSED[invitation.state], code=invitation.state)
    if user.email.lower() != invitation.email.lower():
        raise ValidationError(
            f"This invitation was sent to {invitation.email}; sign in with that address to accept it.",
            code="wrong_user",
        )
    _check_inviter_may_grant(invitation)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    membership, created = Membership.objects.get_or_create(
        user=user, organization=invitation.organization, defaults={"role": invitation.role}
    )
    _audit("portal.invitation.accepted", invitation, actor=user)
    if created:
        _audit(
            "portal.membership.created",
            membership,
            actor=user,
            extra={"role": membership.role, "via": "invitation"},
        )
    return membership


def _check_inviter_may_grant(invitation: Invitation) -> None:
    """Refuse an invitation whose inviter no longer holds a role that may grant its role.

    An invitation carries its inviter's authority: once they are removed, demoted or switched off
    it grants nothing (the authority rule: re-evaluated, not frozen at the time of sending).
    """
    if invitation.invited_by_id is None:
        return
    role = (
        authority_memberships()
        .select_for_update(of=("self",), no_key=True)
        .filter(organization_id=invitation.organization_id, user_id=invitation.invited_by_id)
        .values_list("role", flat=True)
        .first()
    )
    may_grant = role == Role.OWNER or (role == Role.ADMIN and invitation.role != Role.OWNER)
    if not may_grant:
        raise ValidationError(
            "Whoever sent this invitation can no longer grant its role; ask an owner or admin for a new one.",
            code="inviter_lost_role",
        )


@sensitive_variables("token", "password")
@transaction.atomic
def user_create_from_invitation(*, token: str, full_name: str, password: str) -> tuple[User, Membership]:
    """Create an account for an invitation's email address and accept the invitation."""
    # Locked first: a double submit waits here, then finds the invitation accepted.
    found = _locked_invitation(token)
    if found is None or not found.is_open:
        raise ValidationError("This invitation link is not valid any more.", code="invalid")
    exists = ValidationError("An account with this email already exists; sign in to accept.", code="exists")
    if User.objects.filter(email__iexact=found.email).exists():
        raise exists
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=found.email, password=password, full_name=full_name)
    except IntegrityError:
        raise exists from None
    return user, invitation_accept(token=token, user=user)


@transaction.atomic
def organization_set_mfa_requirement(
    *, organization: Organization, requirement: str, actor: User
) -> Organization:
    """Set who in the organisation must use a second factor."""
    if requirement not in MfaRequirement.values:
        raise ValidationError("Unknown two-factor requirement.", code="invalid_requirement")
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    previous = organization.mfa_required
    if previous == requirement:
        return organization
    organization.mfa_required = requirement
    organization.save(update_fields=["mfa_required", "updated_at"])
    audit_log(
        action="portal.organization.mfa_requirement_changed",
        actor=actor,
        organization=organization,
        target=organization,
        extra={"from": previous, "to": requirement},
    )
    return organization
