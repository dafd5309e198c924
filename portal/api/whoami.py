"""`GET /api/v1/whoami`: tell a machine which credential it presented."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api.negotiation import MachineNegotiation
from portal.infra.responses import no_store
from portal.permissions import IsMachinePrincipal
from portal.principal import INVALID_CREDENTIAL, Principal


def machine_authentication_classes() -> list[type]:
    """Return the configured machine authentication classes (API keys, access tokens)."""
    return [import_string(path) for path in settings.PORTAL_MACHINE_AUTHENTICATION_CLASSES]


class MachineCredentialView(APIView):
    """An API for machines only: no credential at all answers exactly like an unusable one.

    Both are 401 with `WWW-Authenticate: Bearer` and the same body, so a caller learns
    nothing from the difference; a usable credential without the right scope stays 403.
    """

    authentication_classes = machine_authentication_classes()
    #: DRF's negotiation, its choice remembered per Accept header (the same answers).
    content_negotiation_class = MachineNegotiation

    def permission_denied(self, request, message=None, code=None):
        if not isinstance(request.auth, Principal):
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIAL)
        super().permission_denied(request, message, code)


#: What whoami answers: every credential's common fields, then what its kind adds (optional).
_WHOAMI = inline_serializer(
    "WhoAmI",
    {
        "credential_type": serializers.ChoiceField(choices=["api_key", "access_token"]),
        "credential_id": serializers.CharField(),
        "organization": serializers.CharField(),
        "scopes": serializers.ListField(child=serializers.CharField()),
        "owner": serializers.EmailField(allow_null=True),
        "expires_at": serializers.DateTimeField(allow_null=True),
        "environment": serializers.ChoiceField(
            choices=["live", "test"],
            required=False,
            help_text="The API key's environment: for an API key, and for a token a gateway "
            "obtained by exchanging one. Absent for an M2M application's token.",
        ),
        # What each kind of credential adds about itself (`Principal.extra`).
        "name": serializers.CharField(required=False, help_text="An API key's name."),
        "client_id": serializers.CharField(
            required=False,
            help_text="An access token: the client id of the application that obtained it (for an exchanged "
            "token, the gateway).",
        ),
        "application": serializers.CharField(
            required=False, help_text="An M2M application's token: the application's name."
        ),
        "resource_server": serializers.BooleanField(
            required=False,
            help_text="An M2M application's token: whether staff mark the application as a resource server.",
        ),
        "api_key_id": serializers.CharField(
            required=False, help_text="An exchanged token: the id of the API key it was exchanged for."
        ),
        "api_key": serializers.CharField(
            required=False, help_text="An exchanged token: that API key's name."
        ),
        "actor": serializers.CharField(
            required=False,
            allow_null=True,
            help_text="An exchanged token: the client id of the gateway that exchanged it (`act`).",
        ),
    },
)


class WhoAmIView(MachineCredentialView):
    """Describe the calling credential.

    Accepts `Authorization: Bearer <API key or JWT access token>` (and `X-API-Key` for keys).
    Anything unusable answers 401 with `WWW-Authenticate: Bearer`.
    """

    permission_classes = [IsMachinePrincipal]

    @extend_schema(
        responses={
            200: _WHOAMI,
            401: OpenApiResponse(description="No usable credential (`authentication_failed`)"),
        }
    )
    def get(self, request: Request) -> Response:
        principal = request.auth
        expires_at = principal.expires_at
        # A verdict on a credential, with its owner's address: no cache may keep it (an
        # `X-API-Key` request is no `Authorization` request to a shared cache, RFC 9111 §3.5).
        return no_store(
            Response(
                {
                    "credential_type": principal.credential_type,
                    "credential_id": principal.credential_id,
                    "organization": principal.organization_slug,
                    "scopes": sorted(principal.scopes),
                    "owner": principal.owner_email,
                    "expires_at": expires_at.isoformat() if hasattr(expires_at, "isoformat") else expires_at,
                    **principal.extra,
                }
            )
        )
