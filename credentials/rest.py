"""What the credential kinds' REST viewsets share: who acts, owners by email, lists, create-or-refuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from credentials import policy
from credentials.governance.edits import runtime_policy_changes
from credentials.governance.org_policy import approval_required, policy_locked, scope_increase_needs_approval
from credentials.governance.ownership import lock_membership
from credentials.governance.registry import presented_credentials
from credentials.selectors import member_by_email, owner_filter_id
from portal.api.errors import ApprovalRequired, api_error
from portal.api.metadata import DescribesInput
from portal.authz import Refused
from portal.models import User
from portal.permissions import AuthorizedView, OrganizationAccess
from portal.principal import Principal

T = TypeVar("T")


def policy_of(credential: Any) -> tuple[list[str], dict[str, int] | None]:
    """Return a credential's runtime policy as (allowlist, rate limit)."""
    return list(credential.allowed_ips or []), credential.rate_limit or None


def check_policy_within_caller(
    request: Request,
    allowed_ips: list[str],
    rate_limit: dict[str, int] | None,
    *,
    unless_within: tuple[list[str], dict[str, int] | None] | None = None,
    own_looser: Callable[[Any], list[str]] | None = None,
) -> None:
    """Refuse (`exceeds_credential`) a runtime policy that a calling credential's own would refuse.

    A credential never creates, rotates or moves one wider than itself, and its allowlist and
    rate limit are part of its width: a key kept to the CI network cannot mint an unrestricted
    key, get a secret of one, nor lift its own allowlist or limit. `unless_within` is the
    target's policy before an update: a change that loosens nothing against it (a tighter limit
    on a credential the caller cannot bound) is not refused. `own_looser(caller)` names the
    fields of the target kind's own runtime policy (an application's token quota) that allow
    more than the calling credential's, as the kind compares them
    (`CredentialViewSet.own_policy_looser`). People are not bounded here, only by the
    organisation's rules.
    """
    principal = request.auth
    if not isinstance(principal, Principal):
        return
    for caller in presented_credentials(principal):
        bound = policy_of(caller)
        looser = set(policy.looser_fields(allowed_ips, rate_limit, than=bound))
        if unless_within is not None:
            looser &= set(policy.looser_fields(allowed_ips, rate_limit, than=unless_within))
        if own_looser is not None:
            looser |= set(own_looser(caller))
        if looser:
            own = {
                "allowed_ips": ", ".join(bound[0]) or "any address",
                "rate_limit": policy.format_rate_limit(bound[1]) or "none",
            }
            described = "; ".join(f"{name}: {own[name]}" for name in sorted(looser) if name in own)
            raise Refused(
                "exceeds_credential",
                "A credential cannot give or get a credential with a runtime policy looser than its own"
                + (f" ({described})" if described else "")
                + ": "
                + " and ".join(sorted(looser)),
            )


class CredentialViewSet(DescribesInput, AuthorizedView, GenericViewSet):
    """Base of a credential kind's viewset under `/api/v1/orgs/<slug>/…` (`OrganizationAccess` sets
    `organization` and `membership`; a credential acts for its owner, `portal.authz`).

    A subclass names its kind (`kind_key`, also the prefix of its actions in portal.authz), the
    refusal where new credentials need approval (`approval_detail`), `filtered()`, its kind's
    selector for the list's query parameters, and `scopes_of()`, a row's scope names.
    """

    permission_classes = [OrganizationAccess]
    kind_key = ""
    approval_detail = ""
    #: Where set, a scope increase the organisation approves first is refused here with 403
    #: `approval_required` and this detail (else the kind's own update service refuses it).
    scope_increase_detail = ""
    #: The fields of an update that change the credential's runtime policy (`<kind>.policy`).
    policy_fields: tuple[str, ...] = ("allowed_ips", "rate_limit")

    organization = None
    membership = None

    def filtered(self, params: Any, *, search: str, status: str, owner_id: int | None) -> QuerySet:
        """Return the organisation's credentials of this kind matching the list's query parameters."""
        raise NotImplementedError

    def scopes_of(self, credential: Any) -> list[str]:
        """Return the scope names the credential holds."""
        raise NotImplementedError

    def policy_unchanged(self, credential: Any, name: str, value: Any) -> bool:
        """Whether sending `value` for policy field `name` leaves the credential's policy as it is.

        Sending back what was read is not a policy change: it asks for neither `<kind>.policy`
        nor a fresh sign-in. A value the service would refuse counts as a change (it refuses it).
        """
        if name not in ("allowed_ips", "rate_limit"):
            return False
        try:
            return not runtime_policy_changes(credential, **{name: value})
        except DjangoValidationError:
            return False

    def own_policy_looser(
        self, caller: Any, credential: Any | None, changes: dict[str, Any] | None
    ) -> list[str]:
        """Return the fields of the kind's own runtime policy (`policy_fields` beyond the allowlist
        and rate limit) that would allow more than the calling credential `caller`'s.

        The policy compared is `changes` for a new credential (`credential` None, an omitted
        field counting as none); for an update, `credential`'s with `changes` applied, a field
        counting only where it is also looser than before (tightening is always allowed); for a
        rotation (`changes` None), `credential`'s as it is. A kind without such fields: none.
        """
        return []

    def get_queryset(self) -> QuerySet:
        if self.organization is None:
            return self.queryset
        params = self.request.query_params if self.action == "list" else {}
        return self.filtered(
            params,
            search=params.get("search", "")[:100],
            status=params.get("status", ""),
            owner_id=owner_filter_id(self.organization, params.get("owner", "")),
        )

    # --- who acts ---------------------------------------------------------------------------

    def _actor(self) -> tuple[User | None, str]:
        # A credential acts on behalf of its owner; the audit trail names the credential too.
        return self.acting_user(), self.acting_via()

    def _owner(self, email: str | None) -> User | None:
        if not email:
            return None
        # Owners are looked up among the organisation's members only: another organisation's
        # user is "not a member", exactly like an unknown address.
        owner = member_by_email(self.organization, email)
        if owner is None:
            raise exceptions.ValidationError({"owner": ["The owner must be a member of the organisation."]})
        return owner

    def authorize_on(self, action: str, credential: Any, *, scopes: list[str] | None = None) -> None:
        """Ask portal.authz: whose credential, and (for a credential acting) no wider than the caller.

        A rotation hands out a new secret (or registers a key) of the target: its runtime policy
        must be within the caller's too.
        """
        self.authorize(
            action,
            owner_id=credential.owner_id,
            scopes=scopes if scopes is not None else self.scopes_of(credential),
        )
        if action.endswith(".rotate"):
            check_policy_within_caller(
                self.request,
                *policy_of(credential),
                own_looser=lambda caller: self.own_policy_looser(caller, credential, None),
            )

    def _updating(self, credential: Any, values: dict[str, Any]) -> tuple[User | None, dict[str, Any]]:
        """Authorise a partial update step by step; return (the new owner or None, the policy changes).

        Each step is its own action in portal.authz: `<kind>.update`, then `<kind>.scopes` (or
        `<kind>.scopes_widen`) for new scopes, `<kind>.reassign` for another owner and
        `<kind>.policy` for any of `policy_fields` whose value changes.
        """
        kind = self.kind_key
        sent_owner = values.get("owner")
        if (
            sent_owner
            and credential.owner_id is not None
            and sent_owner.casefold() == credential.owner.email.casefold()
            and member_by_email(self.organization, sent_owner) is None
        ):
            # The owner it shows, sent back, who has left (an orphan): no owner change. Sending back
            # what was read, with one change, must work; a former owner who rejoined is a member
            # again and is looked up below (taking it back clears the orphan mark).
            sent_owner = None
        new_owner = self._owner(sent_owner)
        scopes = values.get("scopes")
        current = self.scopes_of(credential)
        self.authorize_on(f"{kind}.update", credential)
        if scopes is not None:
            widening = bool(set(scopes) - set(current))
            self.authorize_on(
                f"{kind}.scopes_widen" if widening else f"{kind}.scopes", credential, scopes=scopes
            )
            if (
                widening
                and self.scope_increase_detail
                and scope_increase_needs_approval(self.organization, current, scopes)
            ):
                raise ApprovalRequired(self.scope_increase_detail)
        if new_owner is not None and (
            new_owner.pk != credential.owner_id or credential.orphaned_at is not None
        ):
            # Naming an orphaned credential's owner (a member again) takes it back: a reassignment.
            self.authorize_on(f"{kind}.reassign", credential, scopes=scopes)
        policy_changes = {
            name: values[name]
            for name in self.policy_fields
            if name in values and not self.policy_unchanged(credential, name, values[name])
        }
        if policy_changes:
            self.authorize_on(f"{kind}.policy", credential)
            current = policy_of(credential)
            check_policy_within_caller(
                self.request,
                policy_changes.get("allowed_ips", current[0]),
                policy_changes.get("rate_limit", current[1]),
                unless_within=current,
                own_looser=lambda caller: self.own_policy_looser(caller, credential, policy_changes),
            )
        return new_owner, policy_changes

    def lock_policy_first(self, policy_changes: dict[str, Any], new_owner: User | None) -> None:
        """Lock the organisation's policy row before an update locks the credential, if the update
        changes its runtime policy (memberships, policy, credentials: the order every write keeps).

        The new owner's membership comes before it: the update's service locks that row next, and
        a write for that member (a new credential of theirs) holds it while it waits for the policy.
        """
        if policy_changes:
            if new_owner is not None:
                lock_membership(self.organization.pk, new_owner.pk)
            policy_locked(self.organization)

    def _creating(self, values: dict[str, Any]) -> User | None:
        """Authorise a create for the owner named (else the actor) and return that owner.

        Where the organisation approves new credentials of this kind first, refuse with 403
        `approval_required`: a request is filed in the dashboard, with a justification.
        """
        owner = self._owner(values.get("owner")) or self.acting_user()
        self.authorize(owner_id=owner.pk if owner else None, scopes=values["scopes"])
        check_policy_within_caller(
            self.request,
            values.get("allowed_ips") or [],
            values.get("rate_limit"),
            own_looser=lambda caller: self.own_policy_looser(caller, None, values),
        )
        if approval_required(self.organization, self.kind_key):
            raise ApprovalRequired(self.approval_detail)
        return owner

    def refusal(self, exc: DjangoValidationError) -> exceptions.APIException:
        """Return the REST answer to a service's refusal: 400 unless the kind names its 403 and 409 codes."""
        return api_error(exc)

    def _call(self, service: Callable[..., T], **arguments: Any) -> T:
        """Run a service as the acting user, naming the interface; a refusal answers through `refusal`."""
        actor, via = self._actor()
        try:
            return service(actor=actor, via=via, **arguments)
        except DjangoValidationError as exc:
            raise self.refusal(exc) from exc

    # --- actions ----------------------------------------------------------------------------

    def list(self, request: Request, org_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, org_slug: str, **lookup: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def handle_exception(self, exc):
        # A service's PermissionDenied (Django's) answers like DRF's: 403 with a detail.
        if isinstance(exc, DjangoPermissionDenied):
            exc = exceptions.PermissionDenied(str(exc))
        return super().handle_exception(exc)
