"""REST API for M2M applications: management under `/api/v1/orgs/<slug>/m2m-apps/`."""

from __future__ import annotations

from collections.abc import Callable
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

from credentials.governance.edits import credential_policy_set
from credentials.governance.org_policy import policy_for
from credentials.rest import CredentialViewSet
from portal.api.errors import api_error
from portal.api.whoami import machine_authentication_classes
from portal.infra.responses import no_store
from tokens.clients import serializers
from tokens.clients.quota import clean_token_quota, quota_looser, token_quota_of
from tokens.clients.selectors import client_public_keys_for, client_secrets_for, m2m_apps_filtered
from tokens.clients.services import (
    client_public_key_add,
    client_public_key_revoke,
    client_secret_revoke,
    client_secret_rotate,
    m2m_app_create,
    m2m_app_revoke,
    m2m_app_token_quota_set,
    m2m_app_update,
)
from tokens.models import ClientCredential, M2MApplication

#: Service refusals that are about the application's state, not the request's input: 409. `conflict`:
#: it changed owner meanwhile (`governance.ownership.check_owner_unchanged`), as the move API answers.
_CONFLICT_CODES = {
    "revoked",
    "inactive",
    "wrong_auth_method",
    "too_many",
    "not_approved",
    "orphaned",
    "conflict",
}

#: A service's field -> the field of the REST request that carries it (rotation, a new public key).
_REST_FIELDS = {"overlap": "overlap_hours"}


_LIST_PARAMETERS = [
    OpenApiParameter("search", OpenApiTypes.STR, description="Name, client id or owner email contains this."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=M2MApplication.Status.values),
    OpenApiParameter("owner", OpenApiTypes.EMAIL, description="Owner's email address."),
    OpenApiParameter(
        "token_endpoint_auth_method",
        OpenApiTypes.STR,
        enum=M2MApplication.AuthMethod.values,
        description="How the application authenticates at the token endpoint.",
    ),
    OpenApiParameter(
        "auth_method",
        OpenApiTypes.STR,
        enum=M2MApplication.AuthMethod.values,
        description="Short for `token_endpoint_auth_method`.",
    ),
]

_REFUSALS = {
    403: OpenApiResponse(
        description="Not allowed (`not_owner`, `not_manager`, `insufficient_scope`, `exceeds_credential`, "
        "`step_up_required`, `approval_required`)"
    ),
    404: OpenApiResponse(description="No such application in this organisation"),
}
_CONFLICT = {
    409: OpenApiResponse(
        description="Revoked, inactive, the other authentication method, too many live secrets or keys, "
        "or it changed owner meanwhile (`conflict`)"
    )
}


def _revoke_responses(serializer) -> dict:
    """Return the documented answers of a revoke action: the revoked object, the refusals, 409."""
    return {200: serializer, **_REFUSALS, 409: OpenApiResponse(description="Already revoked")}


@extend_schema_view(
    list=extend_schema(summary="List the organisation's M2M applications", parameters=_LIST_PARAMETERS),
    retrieve=extend_schema(
        summary="Show one M2M application", responses={200: serializers.M2MAppSerializer, 404: _REFUSALS[404]}
    ),
)
class M2MAppViewSet(CredentialViewSet):
    """Manage an organisation's M2M applications.

    Authenticated by session (with CSRF) or by an API key or access token of the same
    organisation holding `m2m_apps:manage`, acting for its owner (portal.authz).
    """

    authentication_classes = [*machine_authentication_classes(), SessionAuthentication]
    kind_key = "m2m_app"
    approval_detail = "Your organisation approves new M2M applications first: request one in the dashboard."
    scope_increase_detail = "Your organisation approves scope increases: request them in the dashboard."
    policy_fields = (*CredentialViewSet.policy_fields, "token_quota")
    authz_actions = {
        "list": "m2m_app.view",
        "retrieve": "m2m_app.view",
        "create": "m2m_app.create",
        "partial_update": "m2m_app.update",
        "rotate_secret": "m2m_app.rotate",
        "secret_revoke": "m2m_app.revoke",
        "revoke": "m2m_app.revoke",
        "public_keys": "m2m_app.view",
        # As in the dashboard: a key is added or withdrawn like a secret is rotated (step-up).
        "public_key_add": "m2m_app.rotate",
        "public_key_revoke": "m2m_app.rotate",
    }
    serializer_class = serializers.M2MAppSerializer
    input_serializers = {
        "create": serializers.M2MAppCreateSerializer,
        "rotate_secret": serializers.SecretRotateSerializer,
        "secret_revoke": None,
        "revoke": None,
        "public_key_add": serializers.PublicKeyAddSerializer,
        "public_key_revoke": None,
    }
    lookup_url_kwarg = "app_id"
    lookup_value_regex = "[0-9]+"
    queryset = M2MApplication.objects.none()

    def filtered(self, params, *, search: str, status: str, owner_id: int | None) -> QuerySet[M2MApplication]:
        return m2m_apps_filtered(
            self.organization,
            search=search,
            status=status,
            owner_id=owner_id,
            auth_method=params.get("token_endpoint_auth_method") or params.get("auth_method", ""),
        )

    def refusal(self, exc: DjangoValidationError) -> exceptions.APIException:
        return api_error(exc, conflict=_CONFLICT_CODES, forbidden={"not_owner"}, fields=_REST_FIELDS)

    def scopes_of(self, application: M2MApplication) -> list[str]:
        return sorted(scope.name for scope in application.allowed_scopes.all())

    def policy_unchanged(self, application: M2MApplication, name: str, value: object) -> bool:
        if name != "token_quota":
            return super().policy_unchanged(application, name, value)
        current = token_quota_of(application)
        try:
            return clean_token_quota(value, current) == current
        except DjangoValidationError:
            return False

    def own_policy_looser(
        self, caller: object, application: M2MApplication | None, changes: dict | None
    ) -> list[str]:
        # An application's token quota bounds the applications its tokens make, change or rotate;
        # an API key mints no tokens, so it bounds no quota.
        if not isinstance(caller, M2MApplication):
            return []
        bound = token_quota_of(caller)
        if changes is None:  # a rotation: the quota as it is
            return ["token_quota"] if quota_looser(token_quota_of(application), bound) else []
        if application is not None and "token_quota" not in changes:
            return []  # an update that leaves the quota as it is
        before = token_quota_of(application) if application is not None else None
        try:
            quota = clean_token_quota(changes.get("token_quota"), before)
        except DjangoValidationError:
            return []  # bad input: the service refuses it on its field
        looser = quota_looser(quota, bound) and (before is None or quota_looser(quota, before))
        return ["token_quota"] if looser else []

    def _fresh(self, application: M2MApplication) -> M2MApplication:
        """Return the application again with everything the serializer shows (after a change)."""
        return m2m_apps_filtered(self.organization).get(pk=application.pk)

    def _credential_to_revoke(
        self, rows: Callable[[M2MApplication], QuerySet[ClientCredential]], pk: str, *, missing: str
    ) -> ClientCredential:
        """Return one secret or public key of the URL's application (404 `missing` unless it is one of
        its `rows`), once the actor may manage the application (its owner, or a manager, and a
        credential acting no narrower than the application)."""
        application = self.get_object()
        credential = rows(application).filter(pk=int(pk)).first()
        if credential is None:
            raise exceptions.NotFound(missing)
        target: dict = {"owner_id": application.owner_id}
        if self.authz_action() == "m2m_app.rotate":
            # Withdrawing a key is a rotation: a credential never changes an application wider
            # than itself. (Revoking a secret, `m2m_app.revoke`, only takes power away.)
            target["scopes"] = self.scopes_of(application)
        self.authorize(**target)
        return credential

    # --- actions ----------------------------------------------------------------------------

    @extend_schema(
        summary="Create an M2M application",
        request=serializers.M2MAppCreateSerializer,
        responses={
            201: serializers.M2MAppCreatedSerializer,
            400: OpenApiResponse(description="Bad input"),
            **_REFUSALS,
        },
        description="A `client_secret_basic` application's response holds its `client_secret`: it is not "
        "stored and is never shown again. A `private_key_jwt` application has no secret; give its first "
        "`public_key` here or add one later. Where the organisation approves new applications first, "
        "this answers 403 `approval_required`: request one in the dashboard.",
    )
    def create(self, request: Request, org_slug: str) -> Response:
        data = serializers.M2MAppCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        owner = self._creating(values)
        application, secret = self._call(
            m2m_app_create,
            organization=self.organization,
            name=values["name"],
            description=values["description"],
            owner=owner,
            scopes=values["scopes"],
            audiences=values["audiences"],
            token_lifetime=values["token_lifetime"],
            auth_method=values["token_endpoint_auth_method"],
            public_key=values["public_key"],
            allowed_ips=values.get("allowed_ips") or [],
            rate_limit=values.get("rate_limit"),
            token_quota=values.get("token_quota"),
        )
        body = serializers.M2MAppCreatedSerializer(
            self._fresh(application), context={"client_secret": secret}
        ).data
        return no_store(Response(body, status=status.HTTP_201_CREATED))

    @extend_schema(
        summary="Change an M2M application's name, description, owner, scopes or runtime policy "
        "(IP allowlist, rate limit, token quota)",
        request=serializers.M2MAppUpdateSerializer,
        responses={
            200: serializers.M2MAppSerializer,
            400: OpenApiResponse(description="Bad input"),
            **_REFUSALS,
            **_CONFLICT,
        },
        description="Widening the scopes and changing the owner need a recent sign-in (step-up) for a "
        "session; where the organisation approves scope increases, a widening answers 403 "
        "`approval_required`.",
    )
    def partial_update(self, request: Request, org_slug: str, app_id: str) -> Response:
        application = self.get_object()
        data = serializers.M2MAppUpdateSerializer(
            data=request.data, context={"current": self.get_serializer(application).data}
        )
        data.is_valid(raise_exception=True)
        values = data.validated_data
        new_owner, policy_changes = self._updating(application, values)
        quota_changed = "token_quota" in policy_changes
        token_quota = policy_changes.pop("token_quota", None)
        with transaction.atomic():
            self.lock_policy_first(policy_changes, new_owner)
            application = self._call(
                m2m_app_update,
                application=application,
                name=values.get("name"),
                description=values.get("description"),
                owner=new_owner,
                scopes=values.get("scopes"),
            )
            if policy_changes:
                application = self._call(credential_policy_set, credential=application, **policy_changes)
            if quota_changed:
                application = self._call(
                    m2m_app_token_quota_set, application=application, token_quota=token_quota
                )
        return Response(self.get_serializer(self._fresh(application)).data)

    @extend_schema(
        summary="Rotate an M2M application's client secret",
        request=serializers.SecretRotateSerializer,
        responses={
            201: serializers.SecretRotateResponseSerializer,
            400: OpenApiResponse(
                description="`overlap_hours` out of range (0–168), or not 0 while a secret reported leaked "
                "may still work"
            ),
            **_REFUSALS,
            **_CONFLICT,
        },
        description="Issue a new secret (its plaintext `client_secret` is in this response only); the "
        "current secrets keep working for `overlap_hours` (default: the organisation's rotation overlap). "
        "A `private_key_jwt` application, a revoked one, or one with five live secrets answers 409.",
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, org_slug: str, app_id: str) -> Response:
        application = self.get_object()
        self.authorize_on("m2m_app.rotate", application)
        data = serializers.SecretRotateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hours = data.validated_data.get("overlap_hours")
        if hours is None:
            hours = policy_for(self.organization).default_rotation_overlap_hours
        secret, plaintext = self._call(
            client_secret_rotate, application=application, overlap=timedelta(hours=hours)
        )
        body = {
            "client_id": application.client_id,
            "client_secret": plaintext,
            "secret": serializers.ClientSecretSerializer(secret).data,
            "application": self.get_serializer(self._fresh(application)).data,
        }
        return no_store(Response(body, status=status.HTTP_201_CREATED))

    @extend_schema(
        summary="Revoke one client secret",
        request=None,
        responses=_revoke_responses(serializers.ClientSecretSerializer),
        description="The secret stops at once, and so do the tokens minted with it.",
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"secrets/(?P<secret_id>[0-9]+)/revoke",
        url_name="secret-revoke",
    )
    def secret_revoke(self, request: Request, org_slug: str, app_id: str, secret_id: str) -> Response:
        secret = self._credential_to_revoke(client_secrets_for, secret_id, missing="No such secret.")
        secret = self._call(client_secret_revoke, secret=secret)
        return Response(serializers.ClientSecretSerializer(secret).data)

    @extend_schema(
        summary="Revoke an M2M application",
        request=None,
        responses=_revoke_responses(serializers.M2MAppSerializer),
        description="The application, all its secrets and keys, and every token they minted stop at once.",
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, org_slug: str, app_id: str) -> Response:
        application = self.get_object()
        self.authorize(owner_id=application.owner_id)
        application = self._call(m2m_app_revoke, application=application)
        return Response(self.get_serializer(self._fresh(application)).data)

    @extend_schema(
        summary="List a private_key_jwt application's public keys",
        responses={200: serializers.ClientPublicKeySerializer(many=True), 404: _REFUSALS[404]},
    )
    @action(
        detail=True, methods=["get"], url_path="public-keys", url_name="public-keys", pagination_class=None
    )
    def public_keys(self, request: Request, org_slug: str, app_id: str) -> Response:
        application = self.get_object()
        return Response(serializers.ClientPublicKeySerializer(application.public_keys.all(), many=True).data)

    @extend_schema(
        summary="Register a public key of a private_key_jwt application",
        request=serializers.PublicKeyAddSerializer,
        responses={
            201: serializers.ClientPublicKeySerializer,
            400: OpenApiResponse(description="Bad key"),
            **_REFUSALS,
            **_CONFLICT,
        },
        description="At most two live keys. With `overlap_hours`, the current keys stop after that many "
        "hours (rotation with overlap). A client-secret application answers 409 `wrong_auth_method`.",
    )
    @public_keys.mapping.post
    def public_key_add(self, request: Request, org_slug: str, app_id: str) -> Response:
        application = self.get_object()
        self.authorize_on("m2m_app.rotate", application)
        data = serializers.PublicKeyAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        overlap = values.get("overlap_hours")
        key = self._call(
            client_public_key_add,
            application=application,
            jwk_or_pem=values["public_key"],
            algorithm=values.get("alg") or None,
            expires_at=values.get("expires_at"),
            overlap=timedelta(hours=overlap) if overlap is not None else None,
        )
        return Response(serializers.ClientPublicKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revoke a public key of a private_key_jwt application",
        request=None,
        responses=_revoke_responses(serializers.ClientPublicKeySerializer),
        description="Assertions it signs and the tokens it minted stop working at once.",
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"public-keys/(?P<public_key_id>[0-9]+)/revoke",
        url_name="public-key-revoke",
    )
    def public_key_revoke(self, request: Request, org_slug: str, app_id: str, public_key_id: str) -> Response:
        public_key = self._credential_to_revoke(
            client_public_keys_for, public_key_id, missing="No such public key."
        )
        public_key = self._call(client_public_key_revoke, public_key=public_key)
        return Response(serializers.ClientPublicKeySerializer(public_key).data)
