"""REST: move an API key to an M2M application (`POST …/api-keys/<key id>/move-to-m2m-app/`).

It lives in `tokens` (not in the API-keys viewset of `credentials/api_keys/api.py`) because the move
creates an M2M application, and `credentials` never imports `tokens`. The URL sits under the
API-keys resource all the same (routed from tokens/urls.py); see docs/choosing.md.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from credentials.api_keys.authentication import ApiKeyAuthentication
from credentials.api_keys.selectors import api_keys_for
from credentials.names import CredentialNameSerializerField
from credentials.rest import check_policy_within_caller, policy_of
from portal.api.errors import Conflict
from portal.infra.responses import no_store
from portal.permissions import AuthorizedView, OrganizationAccess
from tokens.clients.moves import api_key_move_to_m2m_app


class MoveRequestSerializer(serializers.Serializer):
    name = CredentialNameSerializerField(
        required=False, allow_blank=True, max_length=100, help_text="Default: the key's name."
    )
    justification = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="For the approvers, where needed."
    )


MoveResponseSerializer = inline_serializer(
    "ApiKeyMoveResponse",
    {
        "id": serializers.IntegerField(),
        "client_id": serializers.CharField(),
        "client_secret": serializers.CharField(
            allow_null=True, help_text="Shown in this response only; null while the application is pending."
        ),
        "status": serializers.CharField(help_text="`active`, or `pending` while it waits for approval."),
        "key_id": serializers.CharField(),
        "environment": serializers.CharField(),
        "scopes": serializers.ListField(child=serializers.CharField()),
        "detail": serializers.CharField(required=False),
    },
)


class ApiKeyMoveView(AuthorizedView, APIView):
    """Create an M2M application with the key's owner, scopes and environment; the key keeps working.

    Authorised as `api_key.move` on the key and `m2m_app.create` for its owner (portal.authz):
    a credential needs `api_keys:manage` and `m2m_apps:manage`, and a person a recent step-up.
    """

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [OrganizationAccess]
    authz_actions = {"post": "api_key.move"}

    @extend_schema(
        summary="Move an API key to an M2M application",
        request=MoveRequestSerializer,
        responses={
            201: MoveResponseSerializer,
            400: OpenApiResponse(description="Bad input (`name`, `justification`)"),
            403: OpenApiResponse(
                description="Not allowed: `api_key.move` on the key and `m2m_app.create` for its owner "
                "(`not_owner`; `insufficient_scope`: a credential needs `api_keys:manage` and "
                "`m2m_apps:manage`; `step_up_required`; `exceeds_credential`)"
            ),
            404: OpenApiResponse(description="No such API key in this organisation"),
            409: OpenApiResponse(
                description="The key is revoked, suspended, pending, expired, rotated, leaked or already "
                "moved (`inactive`, `rotated`, `leaked`, `moved`), or it changed meanwhile (`conflict`)"
            ),
        },
        description=(
            "Creates an M2M application with the key's owner, scopes and environment, through the same "
            "approval rules as any new application. The response holds the client secret once; where the "
            "organisation approves new applications the application is `pending` and `client_secret` is "
            "null. The key keeps working until it is revoked."
        ),
        tags=["api-keys"],
    )
    def post(self, request: Request, org_slug: str, key_id: str) -> Response:
        api_key = get_object_or_404(api_keys_for(self.organization), key_id=key_id)
        # `api_key.move` also asks `m2m_app.create` for the key's owner (portal.authz).
        self.authorize(owner_id=api_key.owner_id, scopes=api_key.scopes)
        # The application keeps the key's runtime policy: no looser than the calling credential's.
        check_policy_within_caller(request, *policy_of(api_key))
        data = MoveRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.acting_user()
        try:
            move = api_key_move_to_m2m_app(
                api_key=api_key,
                actor=actor,
                name=data.validated_data.get("name", ""),
                justification=data.validated_data.get("justification", ""),
                via=self.acting_via(),
            )
        except DjangoValidationError as exc:
            if hasattr(exc, "error_dict"):
                raise exceptions.ValidationError(exc.message_dict) from exc
            raise Conflict(" ".join(exc.messages), code=exc.code or "conflict") from exc
        body = move.summary()
        if move.pending:
            body["detail"] = (
                "Your organisation approves new M2M applications: this one waits for approval. Its owner "
                "generates the secret once it is approved. The key keeps working."
            )
        return no_store(Response(body, status=status.HTTP_201_CREATED))
