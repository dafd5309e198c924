"""`POST /oauth/revoke`: token revocation (RFC 7009 §2)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse

from tokens.selectors import live_access_token
from tokens.services import access_token_revoke
from tokens.verifier import InvalidToken
from tokens.views.common import OAuthEndpointView, authenticate_client_or_refuse, no_store, oauth_error


class RevokeView(OAuthEndpointView):
    """Let a client revoke one of its own access tokens.

    The client authenticates like at the token endpoint (RFC 7009 §2.1). The token's `jti`
    goes on the revocation list until the token expires. Unknown, expired, garbage or
    another client's tokens also answer 200 (§2.2): the client cannot learn anything.
    Refresh tokens do not exist here, so any `token_type_hint` is accepted and ignored.
    """

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        caller = authenticate_client_or_refuse(request)
        if isinstance(caller, HttpResponse):
            return caller
        application, _secret = caller
        if len(request.POST.getlist("token")) > 1:
            return oauth_error("invalid_request", "The 'token' parameter is repeated.")
        token = request.POST.get("token", "")
        if not token:
            return oauth_error("invalid_request", "The 'token' parameter is missing.")
        try:
            claims = live_access_token(token, audience=None).claims
        except InvalidToken:
            claims = None
        if claims is not None and claims["client_id"] == application.client_id:
            access_token_revoke(
                application=application,
                jti=claims["jti"],
                expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
            )
        return no_store(HttpResponse(status=200))
