"""REST API for credential requests under `/api/v1/orgs/<slug>/requests/`: list, show, approve, deny, cancel.

Who may do what (see docs/governance.md, "Credential requests over the REST API"):

- list / show: owners and admins see every request of the organisation; a member sees only
  the requests they made. An API key or access token of the organisation (with
  `inventory:read` or `requests:decide`) sees what its owner would see.
- approve / deny: owners and admins by session (CSRF and a recent sign-in), or a credential
  holding `requests:decide` whose owner is still an owner or admin; it decides as its owner.
  Never the requester, in person or through a credential they own, created or issued the
  secret of (four eyes, `portal.authz`).

Who may do what is `portal.authz.RULES` (`requests.*`); see docs/security.md.
- cancel: only the requester, by session. A credential cannot withdraw a request.
"""

from __future__ import annotations

from functools import partial

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import EmptyPage, Paginator
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from credentials.governance import approvals
from credentials.governance.approvals import people_behind
from credentials.governance.models import CredentialRequest, RequestState, RequestType
from credentials.governance.registry import all_kinds, get_kind
from credentials.governance.selectors import request_credential_refs, requests_for
from portal.api.access import OrganizationApiView
from portal.api.errors import api_error
from portal.api.metadata import DescribesInput
from portal.models import User
from portal.principal import Principal

DECIDE_SCOPE = "requests:decide"
READ_SCOPE = "inventory:read"
MAX_PAGE_SIZE = 200

#: Service refusal codes that mean "the request is not in a state that allows this".
_CONFLICT_CODES = {"decided", "inactive", "rotated"}
#: Service refusal codes that mean "not you".
_FORBIDDEN_CODES = {
    "own_request",
    "four_eyes",
    "not_approver",
    "not_requester",
    "anonymous",
    "scope_beyond_owner",
}


#: Every refusal here answers `{"detail", "code"}`, a plain 400 included.
_api_error = partial(api_error, conflict=_CONFLICT_CODES, forbidden=_FORBIDDEN_CODES, detail_body=True)


class CredentialRequestSerializer(serializers.Serializer):
    """One credential request as the API shows it."""

    id = serializers.IntegerField()
    type = serializers.CharField(source="request_type")
    state = serializers.CharField()
    credential = serializers.SerializerMethodField()
    requested_scopes = serializers.ListField(child=serializers.CharField())
    previous_scopes = serializers.ListField(child=serializers.CharField())
    lifetime_days = serializers.IntegerField(allow_null=True)
    justification = serializers.CharField()
    requester = serializers.SerializerMethodField()
    via = serializers.CharField(
        help_text='"cli" when an operator filed it on the command line for the requester, else empty.'
    )
    created_at = serializers.DateTimeField()
    decided_by = serializers.SerializerMethodField()
    decided_at = serializers.DateTimeField(allow_null=True)
    comment = serializers.CharField()

    @extend_schema_field(
        inline_serializer(
            "RequestedCredential",
            {
                "kind": serializers.CharField(),
                "id": serializers.IntegerField(),
                "ref": serializers.CharField(),
                "name": serializers.CharField(),
                "url": serializers.CharField(),
            },
        )
    )
    def get_credential(self, item: CredentialRequest) -> dict:
        refs = self.context.get("refs", {})
        kind = get_kind(item.kind)
        ref = refs.get((item.kind, item.object_id), "")
        return {
            "kind": item.kind,
            "id": item.object_id,
            "ref": ref,
            "name": item.credential_label,
            "url": kind.detail_path(self.context["org_slug"], item.object_id, ref),
        }

    @extend_schema_field(serializers.EmailField(allow_null=True))
    def get_requester(self, item: CredentialRequest) -> str | None:
        return item.requester.email if item.requester_id else None

    @extend_schema_field(serializers.EmailField(allow_null=True))
    def get_decided_by(self, item: CredentialRequest) -> str | None:
        return item.decided_by.email if item.decided_by_id else None


@extend_schema_serializer(many=False)  # the list's one answer is this page, not a list of them
class CredentialRequestPageSerializer(serializers.Serializer):
    """One page of the requests list, numbered by the list itself (`page` of `pages`)."""

    count = serializers.IntegerField()
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    results = CredentialRequestSerializer(many=True)


class DecisionSerializer(serializers.Serializer):
    """The body of approve and deny: an optional comment for the requester."""

    comment = serializers.CharField(
        max_length=500, allow_blank=True, required=False, default="", trim_whitespace=True
    )


_DECISION_RESPONSES = {
    200: CredentialRequestSerializer,
    400: OpenApiResponse(description="Bad body"),
    403: OpenApiResponse(description="Not an approver, your own request (`own_request`), or step-up needed"),
    404: OpenApiResponse(description="No such request in this organisation"),
    409: OpenApiResponse(
        description="Already decided (`decided`), the credential is no longer active (`inactive`) "
        "or was rotated since (`rotated`)"
    ),
}


class CredentialRequestViewSet(DescribesInput, OrganizationApiView, GenericViewSet):
    """The organisation's credential requests (new credentials and scope increases) and their decisions."""

    authz_actions = {
        "list": "requests.read",
        "retrieve": "requests.read",
        "approve": "requests.decide",
        "deny": "requests.decide",
        "cancel": "requests.cancel",
    }
    serializer_class = CredentialRequestSerializer
    input_serializers = {"approve": DecisionSerializer, "deny": DecisionSerializer, "cancel": None}
    # `list` numbers its pages itself (`page` of `pages`): no DRF paginator.
    pagination_class = None
    lookup_url_kwarg = "request_id"
    lookup_value_regex = "[0-9]+"
    queryset = CredentialRequest.objects.none()
    membership = None

    def get_queryset(self) -> QuerySet[CredentialRequest]:
        if self.organization is None:
            return CredentialRequest.objects.none()
        queryset = requests_for(self.organization)
        if not self.may("requests.read"):
            # A member, or a credential acting for one, sees only the requests they made.
            queryset = queryset.filter(requester_id=self.actor.user_id)
        return queryset

    def _actor(self) -> User | None:
        return self.acting_user()  # A credential acts on behalf of its owner.

    def _body(self, items: list[CredentialRequest]) -> list[dict]:
        context = {"refs": request_credential_refs(items), "org_slug": self.organization.slug}
        return CredentialRequestSerializer(items, many=True, context=context).data

    def _one(self, item: CredentialRequest) -> dict:
        return self._body([item])[0]

    @extend_schema(
        summary="List the organisation's credential requests, newest first",
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, enum=RequestState.values),
            OpenApiParameter("kind", OpenApiTypes.STR, enum=[kind.key for kind in all_kinds()]),
            OpenApiParameter("type", OpenApiTypes.STR, enum=RequestType.values),
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("page_size", OpenApiTypes.INT, description=f"At most {MAX_PAGE_SIZE}."),
        ],
        responses={
            200: CredentialRequestPageSerializer,
            400: OpenApiResponse(
                description="An unknown `state`, `kind` or `type`, or a `page` or `page_size` that is not a "
                "whole number"
            ),
        },
    )
    def list(self, request: Request, org_slug: str) -> Response:
        queryset = self.get_queryset()
        errors = {}
        for name, field, allowed in (
            ("state", "state", RequestState.values),
            ("kind", "kind", [kind.key for kind in all_kinds()]),
            ("type", "request_type", RequestType.values),
        ):
            value = request.GET.get(name, "")
            if not value:
                continue
            if value not in allowed:
                errors[name] = f"Use one of: {', '.join(allowed)}."
            else:
                queryset = queryset.filter(**{field: value})
        if errors:
            raise exceptions.ValidationError(errors)
        try:
            size = min(max(int(request.GET.get("page_size", 50)), 1), MAX_PAGE_SIZE)
            number = int(request.GET.get("page", 1))
        except ValueError:
            raise exceptions.ValidationError({"page": "Use whole numbers for page and page_size."}) from None
        paginator = Paginator(queryset, size)
        try:
            page = paginator.page(number)
        except EmptyPage:
            raise exceptions.NotFound("No such page.") from None
        return Response(
            {
                "count": paginator.count,
                "page": page.number,
                "pages": paginator.num_pages,
                "results": self._body(list(page.object_list)),
            }
        )

    @extend_schema(
        summary="Show one credential request",
        responses={
            200: CredentialRequestSerializer,
            404: OpenApiResponse(
                description="No such request in this organisation (or, for a member, not theirs)"
            ),
        },
    )
    def retrieve(self, request: Request, org_slug: str, request_id: str) -> Response:
        return Response(self._one(self.get_object()))

    def _decide(self, request: Request, decide) -> Response:
        item = self.get_object()
        data = DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        principal = request.auth
        if decide is approvals.credential_request_approve and approvals.widens_itself(item, principal):
            # No credential widens itself (portal.authz): refused as `exceeds_credential`.
            self.authorize("requests.decide", scopes=item.requested_scopes)
        # Four eyes: the people behind a deciding credential count as the decider too.
        linked = people_behind(principal) if isinstance(principal, Principal) else set()
        try:
            item = decide(
                request=item,
                actor=self._actor(),
                comment=data.validated_data["comment"],
                linked_ids=linked,
            )
        except DjangoValidationError as exc:
            raise _api_error(exc) from exc
        return Response(self._one(item))

    @extend_schema(
        summary="Approve a waiting request (owners and admins; never your own)",
        request=DecisionSerializer,
        responses=_DECISION_RESPONSES,
        description="A new credential may then get its secret (its owner generates it in the dashboard); "
        "a scope increase takes effect at once.",
    )
    def approve(self, request: Request, org_slug: str, request_id: str) -> Response:
        return self._decide(request, approvals.credential_request_approve)

    @extend_schema(
        summary="Deny a waiting request (owners and admins; never your own)",
        request=DecisionSerializer,
        responses=_DECISION_RESPONSES,
        description="A new credential is marked denied and never gets a secret; scopes stay as they are.",
    )
    def deny(self, request: Request, org_slug: str, request_id: str) -> Response:
        return self._decide(request, approvals.credential_request_deny)

    @extend_schema(
        summary="Withdraw your own waiting request (the requester, signed in)",
        request=None,
        responses={
            200: CredentialRequestSerializer,
            403: OpenApiResponse(description="Not your request (`not_requester`), or a credential"),
            404: OpenApiResponse(description="No such request in this organisation"),
            409: OpenApiResponse(description="Already decided (`decided`)"),
        },
    )
    def cancel(self, request: Request, org_slug: str, request_id: str) -> Response:
        item = self.get_object()
        try:
            item = approvals.credential_request_cancel(request=item, actor=self._actor())
        except DjangoValidationError as exc:
            raise _api_error(exc) from exc
        return Response(self._one(item))
