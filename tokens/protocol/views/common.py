"""Shared pieces of the OAuth endpoints: RFC 6749 error bodies and client authentication."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters

from credentials import usage
from portal.infra import ratelimit
from portal.infra.net import client_ip
from portal.infra.responses import no_store
from tokens.models import ClientPublicKey, ClientSecret, M2MApplication
from tokens.protocol import assertions
from tokens.protocol.oauth import (
    SlowDown,
    UnauthorizedClient,
    _basic_credentials,
    authenticate_client_parameters,
    check_client_policy,
    record_client_use,
    uses_basic_auth,
)
from tokens.protocol.selectors import live_access_token
from tokens.verifier import InvalidToken


def oauth_error(
    error: str, description: str | None = None, *, status: int = 400, basic_challenge: bool = False
) -> HttpResponse:
    """Return an RFC 6749 §5.2 JSON error response."""
    body = {"error": error}
    if description:
        body["error_description"] = description
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    if status == 401 or basic_challenge:
        response["WWW-Authenticate"] = f'Basic realm="{settings.PORTAL_ISSUER}", charset="UTF-8"'
    return no_store(response)


def slow_down(wait: int) -> HttpResponse:
    """Return 429 with `Retry-After` and an RFC 6749-style `slow_down` error (see docs/security.md)."""
    response = oauth_error("slow_down", f"Too many requests. Retry after {wait} seconds.", status=429)
    response["Retry-After"] = str(wait)
    return response


#: RFC 6749 §5.2: the members of a token endpoint's error response.
ERROR_MEMBERS = ("error", "error_description", "error_uri")


def error_members_only(body: str) -> str:
    """Return oauthlib's error JSON with only the §5.2 members.

    oauthlib copies any `state` the request body carried into its error (an authorization-code
    parameter, never the token endpoint's): client input the endpoint must not echo.
    """
    error = json.loads(body)
    return json.dumps({name: error[name] for name in ERROR_MEMBERS if name in error})


def invalid_client() -> HttpResponse:
    """Return the one answer for every failed client authentication (RFC 6749 §5.2)."""
    return oauth_error("invalid_client", "Client authentication failed.", status=401)


#: Parameters a repeat of which is named in the error; any other name is not echoed (it may be
#: anything a client sent, a whole API key included, or characters RFC 6749 §5.2 does not allow).
_NAMED_PARAMETERS = frozenset(
    {
        "grant_type", "scope", "client_id", "client_secret", "client_assertion", "client_assertion_type",
        "resource", "audience", "token", "token_type_hint", "subject_token", "subject_token_type",
        "requested_token_type", "actor_token", "actor_token_type", "client_ip",
    }
)  # fmt: skip


def repeated_parameter(request: HttpRequest, *, allowed: tuple[str, ...] = ()) -> str | None:
    """Return the error description for a parameter sent more than once (RFC 6749 §3.2), if any."""
    for key, values in request.POST.lists():
        if len(values) > 1 and key not in allowed:
            return (
                f"The {key!r} parameter is repeated."
                if key in _NAMED_PARAMETERS
                else "A parameter is repeated."
            )
    return None


def several_client_methods(request: HttpRequest) -> bool:
    """Return whether the request authenticates the client in more than one way (RFC 6749 §2.3).

    The ways: `Authorization: Basic`, a body `client_secret`, client assertion parameters (RFC
    7523 §2.2). A body `client_id` beside Basic is not a second way (§2.3.1); it must name the
    same client, which authentication checks. A parameter sent empty counts as omitted (§3.2).
    Asked before authenticating, so no credential is checked and no failure is counted.
    """
    post = request.POST
    methods = bool(post.get("client_secret")) + bool(
        post.get("client_assertion") or post.get("client_assertion_type")
    )
    if methods == 0:
        return False  # Basic alone, or nothing: authentication answers
    # A Basic attempt as `_basic_credentials` sees one (the scheme and a value), without decoding it.
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    basic = bool(value) and scheme.lower() == "basic"
    return methods + basic > 1


#: RFC 6749 §5.2: "utilizes more than one mechanism for authenticating the client" is invalid_request.
SEVERAL_CLIENT_METHODS = (
    "Authenticate the client one way only: HTTP Basic, client_secret in the body, or a client assertion."
)


def authenticate_client(
    request: HttpRequest,
) -> tuple[M2MApplication, ClientSecret | ClientPublicKey] | None:
    """Authenticate the caller by Basic or body credentials or an assertion, like the token endpoint."""
    return authenticate_client_parameters(
        basic=_basic_credentials(_HeaderView(request)),
        client_id=request.POST.get("client_id", ""),
        client_secret=request.POST.get("client_secret", ""),
        assertion=assertions.assertion_parameters(request.POST),
        endpoint=request.resolver_match.url_name if request.resolver_match else None,
    )


def claimed_client_id(request: HttpRequest) -> str:
    """Return the client id the request claims (Basic, body, then an assertion's sub), unauthenticated."""
    basic = _basic_credentials(_HeaderView(request))
    if basic and basic[0]:
        return basic[0]
    return request.POST.get("client_id", "") or assertions.claimed_client_id(
        request.POST.get("client_assertion", "")
    )


def client_failure_checks(request: HttpRequest) -> list[ratelimit.Check]:
    """Return the rate-limit identities a failed client authentication counts against."""
    return [
        (
            "oauth-client-failures:client",
            claimed_client_id(request),
            ratelimit.per_minute("PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE"),
        ),
        (
            "oauth-client-failures:ip",
            client_ip(request),
            ratelimit.per_minute("PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE"),
        ),
    ]


def authenticate_client_or_refuse(
    request: HttpRequest,
) -> tuple[M2MApplication, ClientSecret | ClientPublicKey] | HttpResponse:
    """Authenticate the client, or return the 429 / 401 answer; failures count toward the limits."""
    checks = client_failure_checks(request)
    wait = ratelimit.blocked(checks)
    if wait is not None:
        return slow_down(wait)
    caller = authenticate_client(request)
    if caller is None:
        ratelimit.hit_all(checks)
        return invalid_client()
    try:
        check_client_policy(caller[0])
    except UnauthorizedClient as exc:
        return oauth_error(exc.error, exc.description)
    except SlowDown as exc:
        return slow_down(exc.wait)
    application = caller[0]
    usage.record("m2m_app", application.client_id, application.organization_id, "valid")
    record_client_use(caller[1])
    return caller


def authenticated_token_claims(request: HttpRequest) -> tuple[M2MApplication, dict | None] | HttpResponse:
    """Authenticate the client and read the one `token` parameter (RFC 7662 §2.1, RFC 7009 §2.1).

    Return the application and the token's claims (None for a token that is not live: expired,
    revoked, forged, garbage), or the error answer to send instead. A repeated
    parameter (two `client_assertion`s, say) is refused before anything is checked, as at the
    token endpoint (RFC 6749 §3.2): which of two values counts would otherwise be up to the parser.
    So is a client authenticating in more than one way (§5.2), uncounted toward the failure limits.
    """
    repeated = repeated_parameter(request)
    if repeated:
        return oauth_error("invalid_request", repeated)
    if several_client_methods(request):
        return oauth_error("invalid_request", SEVERAL_CLIENT_METHODS)
    caller = authenticate_client_or_refuse(request)
    if isinstance(caller, HttpResponse):
        return caller
    application, _secret = caller
    token = request.POST.get("token", "")
    if not token:
        return oauth_error("invalid_request", "The 'token' parameter is missing.")
    try:
        return application, live_access_token(token, audience=None).claims
    except InvalidToken:
        return application, None


class _HeaderView:
    """Expose a Django request's Authorization header the way the oauthlib helpers read it."""

    def __init__(self, request: HttpRequest):
        self.headers = {"Authorization": request.META.get("HTTP_AUTHORIZATION", "")}


def used_basic(request: HttpRequest) -> bool:
    """Return whether the request authenticated (or tried to) with HTTP Basic."""
    return uses_basic_auth(_HeaderView(request))


@method_decorator(csrf_exempt, name="dispatch")
# Hidden from Django's error reports (the DEBUG page, AdminEmailHandler) on every endpoint.
@method_decorator(
    sensitive_post_parameters("client_secret", "client_assertion", "token", "subject_token", "actor_token"),
    name="dispatch",
)
class OAuthEndpointView(View):
    """Base for the POST-only protocol endpoints: JSON errors, no-store, no credentials in the URL."""

    http_method_names = ["post", "options"]

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = oauth_error("invalid_request", "Use POST with a form-encoded body.", status=405)
        response["Allow"] = "POST"
        return response

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST":
            # Parse the body here, so an unreadable one is an RFC 6749 error, not Django's HTML 400.
            try:
                request.POST  # noqa: B018
            except RequestDataTooBig:
                return oauth_error("invalid_request", "The request body is too large.", status=413)
            except (BadRequest, SuspiciousOperation, MultiPartParserError):
                return oauth_error("invalid_request", "Send a UTF-8 form-encoded body.")
        if request.method == "POST" and request.GET:
            return oauth_error(
                "invalid_request", "Send parameters in the form-encoded body, not in the URL query."
            )
        return super().dispatch(request, *args, **kwargs)
