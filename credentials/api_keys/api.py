"""REST API for API keys: management under `/api/v1/orgs/<slug>/api-keys/` and `POST /api/v1/keys/verify`."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from credentials import policy, usage
from credentials.api_keys import keys, serializers
from credentials.api_keys.authentication import ApiKeyAuthentication, failure_checks, refuse_if_throttled
from credentials.api_keys.models import ApiKey
from credentials.api_keys.permissions import VERIFY_SCOPE, HasScopes
from credentials.api_keys.selectors import api_keys_filtered
from credentials.api_keys.services import api_key_create, api_key_revoke, api_key_rotate, api_key_update
from credentials.api_keys.verification import NOT_FOUND, api_key_record_use, api_key_verify
from credentials.governance.edits import credential_policy_set
from credentials.governance.org_policy import policy_for
from credentials.rest import CredentialViewSet
from portal.api.errors import api_error
from portal.api.whoami import MachineCredentialView
from portal.infra import ratelimit
from portal.infra.responses import no_store
from portal.permissions import Authorized, AuthorizedView

#: Service refusals that are about the key's state, not the request's input: 409. `conflict`: it
#: changed owner meanwhile (`governance.ownership.check_owner_unchanged`), as the move API answers.
_CONFLICT_CODES = {"rotated", "inactive", "revoked", "moved", "conflict"}


#: A service's field -> the field of the REST request that carries it.
_REST_FIELDS = {"overlap": "overlap_hours"}

#: Refusals by the organisation's policy on kinds (docs/choosing.md): 403 for "not allowed".
_POLICY_FORBIDDEN = "api_keys_not_allowed"
_POLICY_EXPIRY = "api_key_expiry_too_long"


def _refusal(exc: DjangoValidationError) -> exceptions.APIException:
    if hasattr(exc, "error_dict") and any(
        e.code == _POLICY_EXPIRY for errors in exc.error_dict.values() for e in errors
    ):
        # A field error that also says why, by code, like every other refusal.
        return exceptions.ValidationError(
            {**exc.message_dict, "detail": " ".join(exc.message_dict["expires_at"]), "code": _POLICY_EXPIRY}
        )
    return api_error(exc, conflict=_CONFLICT_CODES, forbidden={_POLICY_FORBIDDEN}, fields=_REST_FIELDS)


_LIST_PARAMETERS = [
    OpenApiParameter("search", OpenApiTypes.STR, description="Name, key id or owner email contains this."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=["active", "expired", "revoked"]),
    OpenApiParameter("environment", OpenApiTypes.STR, enum=["live", "test"]),
    OpenApiParameter("owner", OpenApiTypes.EMAIL, description="Owner's email address."),
]


_REFUSALS = {
    403: OpenApiResponse(
        description="Not allowed (`not_owner`, `not_manager`, `insufficient_scope`, `exceeds_credential`, "
        "`step_up_required`, `approval_required`, `api_keys_not_allowed`)"
    ),
    404: OpenApiResponse(description="No such API key in this organisation"),
}
_BAD_INPUT = {400: OpenApiResponse(description="Bad input")}


@extend_schema_view(
    list=extend_schema(summary="List the organisation's API keys", parameters=_LIST_PARAMETERS),
    retrieve=extend_schema(
        summary="Show one API key", responses={200: serializers.ApiKeySerializer, 404: _REFUSALS[404]}
    ),
)
class ApiKeyViewSet(CredentialViewSet):
    """Manage an organisation's API keys; authenticated by session (with CSRF) or by an API key
    of the same organisation holding `api_keys:manage`, acting for its owner (portal.authz)."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    kind_key = "api_key"
    approval_detail = "Your organisation approves new API keys first: request one in the dashboard."
    scope_increase_detail = "Your organisation approves scope increases: request them in the dashboard."
    authz_actions = {
        "list": "api_key.view",
        "retrieve": "api_key.view",
        "create": "api_key.create",
        "partial_update": "api_key.update",
        "rotate": "api_key.rotate",
        "revoke": "api_key.revoke",
    }
    serializer_class = serializers.ApiKeySerializer
    input_serializers = {
        "create": serializers.ApiKeyCreateSerializer,
        "rotate": serializers.ApiKeyRotateSerializer,
        "revoke": serializers.ApiKeyRevokeSerializer,
    }
    lookup_field = "key_id"
    lookup_url_kwarg = "key_id"
    lookup_value_regex = keys.KEY_ID_RE
    queryset = ApiKey.objects.none()

    def filtered(self, params, *, search: str, status: str, owner_id: int | None) -> QuerySet[ApiKey]:
        return api_keys_filtered(
            self.organization,
            search=search,
            status=status,
            environment=params.get("environment", ""),
            owner_id=owner_id,
        )

    def scopes_of(self, api_key: ApiKey) -> list[str]:
        return list(api_key.scopes)

    def refusal(self, exc: DjangoValidationError) -> exceptions.APIException:
        return _refusal(exc)

    # --- actions ----------------------------------------------------------------------------

    @extend_schema(
        summary="Create an API key",
        request=serializers.ApiKeyCreateSerializer,
        responses={201: serializers.ApiKeyWithSecretSerializer, **_BAD_INPUT, **_REFUSALS},
        description="The response holds the plaintext `key`. It is not stored and is never shown again.",
    )
    def create(self, request: Request, org_slug: str) -> Response:
        data = serializers.ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        owner = self._creating(data.validated_data)
        api_key, plaintext = self._call(
            api_key_create,
            organization=self.organization,
            name=data.validated_data["name"],
            description=data.validated_data["description"],
            owner=owner,
            scopes=data.validated_data["scopes"],
            environment=data.validated_data.get("environment"),
            expires_at=data.validated_data.get("expires_at"),
            allowed_ips=data.validated_data.get("allowed_ips") or [],
            rate_limit=data.validated_data.get("rate_limit"),
        )
        body = serializers.ApiKeyWithSecretSerializer(api_key, context={"plaintext": plaintext}).data
        return no_store(Response(body, status=status.HTTP_201_CREATED))

    @extend_schema(
        summary="Change an API key's name, owner, scopes or runtime policy (IP allowlist, rate limit)",
        request=serializers.ApiKeyUpdateSerializer,
        responses={
            200: serializers.ApiKeySerializer,
            **_BAD_INPUT,
            **_REFUSALS,
            409: OpenApiResponse(description="Revoked, rotated, moved or no longer active"),
        },
    )
    def partial_update(self, request: Request, org_slug: str, key_id: str) -> Response:
        api_key = self.get_object()
        data = serializers.ApiKeyUpdateSerializer(
            data=request.data, context={"current": self.get_serializer(api_key).data}
        )
        data.is_valid(raise_exception=True)
        new_owner, policy_changes = self._updating(api_key, data.validated_data)
        with transaction.atomic():
            self.lock_policy_first(policy_changes, new_owner)
            api_key = self._call(
                api_key_update,
                api_key=api_key,
                name=data.validated_data.get("name"),
                description=data.validated_data.get("description"),
                owner=new_owner,
                scopes=data.validated_data.get("scopes"),
            )
            if policy_changes:
                api_key = self._call(credential_policy_set, credential=api_key, **policy_changes)
        return Response(self.get_serializer(api_key).data)

    @extend_schema(
        summary="Rotate an API key",
        request=serializers.ApiKeyRotateSerializer,
        responses={
            201: serializers.ApiKeyRotateResponseSerializer,
            **_BAD_INPUT,
            **_REFUSALS,
            409: OpenApiResponse(description="Rotated, revoked, or the owner changed meanwhile"),
        },
        description="Issue a successor (its plaintext `key` is in this response only); the old key keeps "
        "working for `overlap_hours` (default: the organisation's rotation overlap). A key that already "
        "has a successor answers 409.",
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, org_slug: str, key_id: str) -> Response:
        api_key = self.get_object()
        self.authorize_on("api_key.rotate", api_key)
        data = serializers.ApiKeyRotateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hours = data.validated_data.get("overlap_hours")
        if hours is None:
            hours = policy_for(self.organization).default_rotation_overlap_hours
        successor, plaintext = self._call(api_key_rotate, api_key=api_key, overlap=timedelta(hours=hours))
        api_key.refresh_from_db()
        body = {
            "successor": serializers.ApiKeyWithSecretSerializer(
                successor, context={"plaintext": plaintext}
            ).data,
            "rotated": serializers.ApiKeySerializer(api_key).data,
        }
        return no_store(Response(body, status=status.HTTP_201_CREATED))

    @extend_schema(
        summary="Revoke an API key",
        request=serializers.ApiKeyRevokeSerializer,
        responses={
            200: serializers.ApiKeySerializer,
            **_BAD_INPUT,
            **_REFUSALS,
            409: OpenApiResponse(description="Already revoked"),
        },
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, org_slug: str, key_id: str) -> Response:
        api_key = self.get_object()
        self.authorize(owner_id=api_key.owner_id)
        data = serializers.ApiKeyRevokeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_key = self._call(api_key_revoke, api_key=api_key, reason=data.validated_data["reason"])
        return Response(self.get_serializer(api_key).data)


def _may_verify(caller, verification) -> bool:
    """Return whether the calling credential may learn about the presented key (valid or not).

    A key of the caller's own organisation, always; of another, only for an application staff
    mark as a resource server (it serves every organisation's clients, and introspects their
    tokens likewise). A key the portal does not know is nobody's: the answer says so.
    """
    key = verification.key or verification.wrong_secret_of
    if key is None or key["organization_id"] == caller.organization_id:
        return True
    return caller.credential_type == "access_token" and bool(caller.extra.get("resource_server"))


class ApiKeyVerifyView(AuthorizedView, MachineCredentialView):
    """Verify an API key centrally, for services that hold a credential with `api_keys:verify`.

    Always 200 for a well-formed request: `{"valid": true, …}` with the key's organisation,
    id, owner, scopes, environment and expiry, or `{"valid": false, "code": …}`.
    """

    permission_classes = [HasScopes, Authorized]
    required_scopes = (VERIFY_SCOPE,)
    authz_actions = {"post": "api_key.verify"}

    @extend_schema(
        summary="Verify an API key",
        request=serializers.ApiKeyVerifyRequestSerializer,
        responses={
            200: serializers.ApiKeyVerifyResponseSerializer,
            **_BAD_INPUT,
            401: OpenApiResponse(description="No usable credential of the caller (`authentication_failed`)"),
            403: OpenApiResponse(description="The caller's credential lacks `api_keys:verify`"),
        },
    )
    def post(self, request: Request) -> Response:
        data = serializers.ApiKeyVerifyRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # Guessing through the verifier is guessing all the same: count failures per client IP.
        refuse_if_throttled(request._request)
        verification = api_key_verify(data.validated_data["key"])
        if not _may_verify(request.auth, verification):
            # Another organisation's key: its owner, name and scopes are not this caller's to
            # learn, nor its budget, usage or last use to touch. Answered as an unknown key.
            verification = NOT_FOUND
        if not verification.valid:
            if verification.code != "malformed":  # a bad checksum is no guess: it costs nothing
                ratelimit.hit_all(failure_checks(request._request))
            usage.record_api_key(verification, ip=data.validated_data.get("client_ip") or "")
            return no_store(Response({"valid": False, "code": verification.code}))
        # The verified key's policy: its allowlist against the address the service reports (a
        # service holding `api_keys:verify` is trusted to report it; none reported, none checked),
        # and its rate limit, since every verification is a use of the key.
        reported_ip = data.validated_data.get("client_ip")
        refused = policy.refusal(
            kind="api_key",
            ident=policy.api_key_budget(verification.key),
            allowed_ips=verification.key.get("allowed_ips"),
            rate_limit=verification.key.get("rate_limit"),
            ip=reported_ip,
            check_ip=bool(reported_ip),
            respond=False,
        )
        # What the key may do now: its scopes bounded by its owner's current role (portal.authz).
        scopes = verification.principal().scopes
        # The address is the one the service reports for its client, not the service's own. A
        # valid verification counts as a use of every scope it returns: which one the service
        # needed is not said, and narrowing must never remove one it relies on.
        usage.record_api_key(
            verification,
            refused.code if refused is not None else None,
            scopes=sorted(scopes) if refused is None else (),
            ip=reported_ip or "",
        )
        if refused is not None:
            body = {"valid": False, "code": refused.code}
            if refused.wait:
                body["retry_after"] = refused.wait
            return no_store(Response(body))
        api_key_record_use(verification, ip=reported_ip)
        key = verification.key
        expires_at = verification.expires_at
        return no_store(
            Response(
                {
                    "valid": True,
                    "organization": key["organization_slug"],
                    "key_id": key["key_id"],
                    "name": key["name"],
                    "owner": key["owner_email"],
                    "scopes": sorted(scopes),
                    "environment": key["environment"],
                    "expires_at": expires_at.isoformat() if expires_at else None,
                }
            )
        )
