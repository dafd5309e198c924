"""`POST /oauth/revoke`: token revocation (RFC 7009 §2)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse

from portal.infra.responses import no_store
from tokens.protocol.services import access_token_revoke
from tokens.protocol.views.common import OAuthEndpointView, authenticated_token_claims


class RevokeView(OAuthEndpointView):
    """Let a client revoke one of its own access tokens.

    The client authenticates like at the token endpoint (RFC 7009 §2.1). The token's `jti`
    goes on the revocation list until the token expires. Unknown, expired, garbage or
    another client's tokens also answer 200 (§2.2): the client cannot learn anything.
    Refresh tokens do not exist here, so any `token_type_hint` is accepted and ignored.
    """

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        found = authenticated_token_claims(request)
        if isinstance(found, HttpResponse):
            return found
        application, claims = found
        if claims is not None and claims["client_id"] == application.client_id:
            access_token_revoke(
                application=application,
                jti=claims["jti"],
                expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
            )
        return no_store(HttpResponse(status=200))
