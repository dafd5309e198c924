"""`POST /oauth/token`: client credentials (RFC 6749 §4.4, §5; RFC 8707) and token exchange (RFC 8693)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from oauth2_provider.views import TokenView as DOTTokenView

from portal.infra import hotcache, ratelimit
from portal.infra.faults import is_database_outage
from portal.infra.metrics import token_endpoint_metrics
from portal.infra.responses import no_store
from tokens import catalogue
from tokens.protocol.oauth import issuance_hot_keys
from tokens.protocol.views.common import (
    SEVERAL_CLIENT_METHODS,
    OAuthEndpointView,
    client_failure_checks,
    error_members_only,
    invalid_client,
    oauth_error,
    repeated_parameter,
    several_client_methods,
    slow_down,
)

log = logging.getLogger(__name__)


class TokenView(OAuthEndpointView, DOTTokenView):
    """Issue an RFC 9068 JWT access token to an authenticated M2M application.

    Two grants: `client_credentials`, and RFC 8693 token exchange of an API key for the
    gateways staff allowed (`tokens.protocol.exchange`).

    DOT/oauthlib do the protocol work (grant type, client authentication through our
    validator, scopes); this view adds what RFC 6749 asks of the transport: no repeated
    parameters (§3.2), no credentials in the URL, one client authentication method
    (§5.2), `Cache-Control: no-store` on every
    answer (§5.1) and `401` + `WWW-Authenticate: Basic` for a failed client (§5.2).
    DOT's own view looks the issued token up in its AccessToken table; we store none.
    """

    @method_decorator(token_endpoint_metrics)
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Several `resource` (RFC 8707 §2) or `audience` (RFC 8693 §2.1) values may be sent: the
        # grant answers `invalid_target`, one target per token.
        repeated = repeated_parameter(request, allowed=("resource", "audience"))
        if repeated:
            return oauth_error("invalid_request", repeated)
        # RFC 6749 §5.2: before any credential is checked, so not a failed authentication either.
        if several_client_methods(request):
            return oauth_error("invalid_request", SEVERAL_CLIENT_METHODS)
        if len({value for value in request.POST.getlist("audience") if value}) > 1:
            # DOT hands oauthlib the last `audience` only (it keeps repeated `resource`s).
            return oauth_error("invalid_target", "Request one resource per token.")
        checks = client_failure_checks(request)
        # One cache round trip for the request: the failure counters and the catalogue entry
        # of the audience asked for (the default one when none is), read together.
        asked = [*request.POST.getlist("resource"), *request.POST.getlist("audience")]
        audiences = [audience for audience in asked if audience] or [settings.PORTAL_DEFAULT_AUDIENCE]
        # The issuance counters (the global per-minute one and the quota windows) of the client
        # id the request claims come in the same read.
        claimed_client_id = checks[0][1]
        keys = [
            *ratelimit.hot_keys(checks),
            *catalogue.hot_keys(audiences),
            *issuance_hot_keys(claimed_client_id),
        ]
        with hotcache.prefetched(keys):
            wait = ratelimit.blocked(checks)
            if wait is not None:
                return slow_down(wait)
            try:
                _uri, headers, body, status = self.create_token_response(request)
            except Exception as exc:
                if is_database_outage(exc):
                    raise  # portal.infra.faults answers 503 temporarily_unavailable
                log.exception("Token endpoint failed")
                return oauth_error("server_error", "The server could not issue a token.", status=500)
        if status == 401:
            ratelimit.hit_all(checks)
            # oauthlib answers with a Bearer challenge; the client authenticates with Basic.
            return invalid_client()
        if status != 200:
            body = error_members_only(body)
        response = HttpResponse(body, status=status, content_type="application/json")
        for name, value in headers.items():
            if name.lower() != "www-authenticate":
                response[name] = value
        return no_store(response)
