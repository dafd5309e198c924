"""`GET /.well-known/oauth-authorization-server`: authorisation server metadata (RFC 8414 §2–3)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from credentials.models import Scope
from portal.infra.errors import require_get
from tokens.federation import trust
from tokens.protocol import exchange
from tokens.protocol.assertions import ALLOWED_ALGORITHMS


@require_get
def authorization_server_metadata(request: HttpRequest) -> JsonResponse:
    """Describe the endpoints; `issuer` is identical to the `iss` of every token (§3.3)."""
    issuer = settings.PORTAL_ISSUER
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    # The algorithms a private_key_jwt assertion may be signed with (RFC 8414 §2).
    assertion_algs = list(ALLOWED_ALGORITHMS)
    body = {
        "issuer": issuer,
        "token_endpoint": issuer + reverse("oauth-token"),
        "jwks_uri": issuer + reverse("oauth-jwks"),
        "introspection_endpoint": issuer + reverse("oauth-introspect"),
        "revocation_endpoint": issuer + reverse("oauth-revoke"),
        "grant_types_supported": ["client_credentials", exchange.GRANT_TYPE],
        # Not registered by RFC 8414: what a gateway may present and ask for (RFC 8693 §3).
        "token_exchange_subject_token_types_supported": list(exchange.SUBJECT_TOKEN_TYPES),
        "token_exchange_requested_token_types_supported": list(exchange.REQUESTED_TOKEN_TYPES),
        # REQUIRED by RFC 8414 §2, and honestly empty: no authorization endpoint, no response
        # type. §3.2 would omit a claim with zero elements; the portal keeps this one, which
        # §2 requires and clients look up. (authlib's metadata validator refuses both forms.)
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "access_token_signing_alg_values_supported": ["RS256", "ES256"],
        # Not registered by RFC 8414: another issuer's token (GitHub Actions, GitLab CI,
        # Kubernetes, SPIFFE) is accepted as a jwt-bearer client assertion at the token
        # endpoint, for the applications that trust that issuer (docs/m2m.md).
        "workload_identity_federation_supported": True,
        "workload_identity_federation_signing_alg_values_supported": list(trust.ALLOWED_ALGORITHMS),
    }
    # RFC 8414 §3.2: a claim with zero elements is omitted (before staff create any scope).
    scopes = list(Scope.objects.order_by("name").values_list("name", flat=True))
    if scopes:
        body["scopes_supported"] = scopes
    response = JsonResponse(body)
    response["Cache-Control"] = "public, max-age=300"
    return response
