"""What the credential kinds' REST viewsets share: who acts, owners by email, lists, create-or-refuse."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from credentials.governance.org_policy import approval_required
from credentials.selectors import member_by_email, owner_filter_id
from portal.api.errors import ApprovalRequired
from portal.models import User
from portal.permissions import AuthorizedView, OrganizationAccess


class CredentialViewSet(AuthorizedView, GenericViewSet):
    """Base of a credential kind's viewset under `/api/v1/orgs/<slug>/…` (`OrganizationAccess` sets
    `organization` and `membership`; a credential acts for its owner, `portal.authz`).

    A subclass names its kind (`kind_key`), the refusal where new credentials need approval
    (`approval_detail`), and `filtered()`, its kind's selector for the list's query parameters.
    """

    permission_classes = [OrganizationAccess]
    kind_key = ""
    approval_detail = ""

    organization = None
    membership = None

    def filtered(self, params: Any, *, search: str, status: str, owner_id: int | None) -> QuerySet:
        """Return the organisation's credentials of this kind matching the list's query parameters."""
        raise NotImplementedError

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

    def _creating(self, values: dict[str, Any]) -> tuple[User | None, str, User | None]:
        """Authorise a create for the owner named (else the actor) and return (actor, via, owner).

        Where the organisation approves new credentials of this kind first, refuse with 403
        `approval_required`: a request is filed in the dashboard, with a justification.
        """
        actor, via = self._actor()
        owner = self._owner(values.get("owner")) or actor
        self.authorize(owner_id=owner.pk if owner else None, scopes=values["scopes"])
        if approval_required(self.organization, self.kind_key):
            raise ApprovalRequired(self.approval_detail)
        return actor, via, owner

    # --- actions ----------------------------------------------------------------------------

    def list(self, request: Request, org_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, org_slug: str, **lookup: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)
