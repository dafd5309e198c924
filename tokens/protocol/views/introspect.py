"""`POST /oauth/introspect`: token introspection (RFC 7662 §2)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from portal.infra.responses import no_store
from tokens.protocol.authentication import AccessTokenAuthentication
from tokens.protocol.views.common import OAuthEndpointView, authenticated_token_claims


class IntrospectView(OAuthEndpointView):
    """Tell an authenticated client whether a token is live, and what it says.

    The caller authenticates like at the token endpoint (RFC 7662 §2.1). It learns
    `active: true` and the claims only for a live token of its own organisation — or of any
    organisation if staff marked it as a platform resource server. Everything else
    (expired, revoked, forged, garbage, foreign) is `{"active": false}` and nothing more
    (§2.2), so the answer never tells a caller why. A token exchanged for an API key (RFC
    8693) is active only while the key and its gateway are, and carries its `act` claim.
    """

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        found = authenticated_token_claims(request)
        if isinstance(found, HttpResponse):
            return found
        application, claims = found
        # Whom the token acts for now (as whoami sees it): its application, or the API key it
        # was exchanged for, with the owner's current role; None once either is gone, or when
        # the organisation its `org_id` names is no longer theirs (a renamed slug).
        principal = AccessTokenAuthentication.principal_of(claims) if claims is not None else None
        if principal is None or not (
            application.is_resource_server
            or principal.organization_id == application.organization_id
            # A gateway may ask about a token it obtained by exchanging a customer's API key.
            or claims["client_id"] == application.client_id
        ):
            return self._inactive()
        # The scopes it may still use: its own, bounded by its owner's current role (authz).
        usable = [scope for scope in claims.get("scope", "").split() if scope in principal.scopes]
        body = {
            "active": True,
            "token_type": "Bearer",
            "scope": " ".join(usable),
            **{
                name: claims[name]
                for name in (
                    "client_id",
                    "sub",
                    "aud",
                    "iss",
                    "exp",
                    "iat",
                    "nbf",
                    "jti",
                    "org_id",
                    "act",
                    "environment",
                )  # fmt: skip
                if name in claims
            },
        }
        return no_store(JsonResponse(body))

    @staticmethod
    def _inactive() -> HttpResponse:
        return no_store(JsonResponse({"active": False}))
