"""The OAuth endpoints in the OpenAPI schema: form bodies and RFC error shapes (drf-spectacular hook).

They are plain Django views (django-oauth-toolkit's machinery), which drf-spectacular does not
see, so this postprocessing hook adds their path items and schemas to the generated document.
"""

from __future__ import annotations

from typing import Any

from portal.infra.metrics import TOKEN_ERROR_CODES

FORM = "application/x-www-form-urlencoded"
ERROR_CODES = list(TOKEN_ERROR_CODES)
CLIENT_AUTH = (
    "Client authentication (RFC 6749 §2.3.1, RFC 7523): HTTP Basic with the client id and secret, "
    "or `client_id` + `client_secret` in the body, or a `private_key_jwt` assertion "
    "(`client_assertion_type` + `client_assertion`)."
)

_CLIENT_FIELDS: dict[str, Any] = {
    "client_id": {"type": "string", "description": "With body authentication or a client assertion."},
    "client_secret": {"type": "string", "writeOnly": True, "description": "Body authentication only."},
    "client_assertion_type": {
        "type": "string",
        "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
    },
    "client_assertion": {"type": "string", "writeOnly": True, "description": "A signed JWT (RFC 7523 §2.2)."},
}

SCHEMAS: dict[str, Any] = {
    "OAuthError": {
        "type": "object",
        "description": "RFC 6749 §5.2 error response.",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "enum": ERROR_CODES},
            "error_description": {"type": "string"},
        },
    },
    "TokenRequest": {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {
                "type": "string",
                "enum": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
            },
            "scope": {
                "type": "string",
                "description": "Space-separated scopes; default: all the client may have.",
            },
            "resource": {"type": "string", "format": "uri", "description": "RFC 8707 audience (repeatable)."},
            "subject_token": {
                "type": "string",
                "writeOnly": True,
                "description": "Token exchange: an API key.",
            },
            "subject_token_type": {"type": "string", "description": "Token exchange (RFC 8693 §2.1)."},
            "requested_token_type": {"type": "string", "description": "Token exchange (RFC 8693 §2.1)."},
            **_CLIENT_FIELDS,
        },
    },
    "TokenResponse": {
        "type": "object",
        "description": "RFC 6749 §5.1; the access token is an RFC 9068 JWT.",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
            "issued_token_type": {"type": "string", "description": "Token exchange only (RFC 8693 §2.2.1)."},
        },
    },
    "IntrospectionRequest": {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string", "writeOnly": True},
            "token_type_hint": {"type": "string", "enum": ["access_token"]},
            **_CLIENT_FIELDS,
        },
    },
    "IntrospectionResponse": {
        "type": "object",
        "description": 'RFC 7662 §2.2: `{"active": false}` and nothing else for any unusable token.',
        "required": ["active"],
        "properties": {
            "active": {"type": "boolean"},
            "token_type": {"type": "string"},
            "scope": {"type": "string"},
            "client_id": {"type": "string"},
            "sub": {"type": "string"},
            "aud": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "iss": {"type": "string"},
            "exp": {"type": "integer"},
            "iat": {"type": "integer"},
            "nbf": {"type": "integer"},
            "jti": {"type": "string"},
            "org_id": {"type": "string"},
            "act": {"type": "object", "description": "Token exchange: the acting party (RFC 8693 §4.1)."},
        },
    },
    "RevocationRequest": {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string", "writeOnly": True},
            "token_type_hint": {"type": "string", "enum": ["access_token"]},
            **_CLIENT_FIELDS,
        },
    },
    "JWKS": {
        "type": "object",
        "description": "RFC 7517: the active signing key and every retired key whose tokens may be alive.",
        "required": ["keys"],
        "properties": {
            "keys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kty", "kid", "alg", "use"],
                    "properties": {
                        "kty": {"type": "string", "enum": ["RSA", "EC"]},
                        "kid": {"type": "string", "description": "RFC 7638 thumbprint."},
                        "alg": {"type": "string", "enum": ["RS256", "ES256"]},
                        "use": {"type": "string", "enum": ["sig"]},
                        "n": {"type": "string"},
                        "e": {"type": "string"},
                        "crv": {"type": "string"},
                        "x": {"type": "string"},
                        "y": {"type": "string"},
                    },
                },
            }
        },
    },
    "AuthorizationServerMetadata": {
        "type": "object",
        "description": "RFC 8414 §2; `issuer` is identical to the `iss` of every token.",
        "required": ["issuer", "token_endpoint", "jwks_uri"],
        "additionalProperties": True,
        "properties": {
            "issuer": {"type": "string", "format": "uri"},
            "token_endpoint": {"type": "string", "format": "uri"},
            "jwks_uri": {"type": "string", "format": "uri"},
            "introspection_endpoint": {"type": "string", "format": "uri"},
            "revocation_endpoint": {"type": "string", "format": "uri"},
            "grant_types_supported": {"type": "array", "items": {"type": "string"}},
            "token_endpoint_auth_methods_supported": {"type": "array", "items": {"type": "string"}},
            "scopes_supported": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str, headers: dict | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(name)}},
    }
    if headers:
        response["headers"] = headers
    return response


_NO_STORE = {"Cache-Control": {"schema": {"type": "string", "example": "no-store"}}}
_ERRORS = {
    "400": _json("OAuthError", "RFC 6749 §5.2 error (e.g. `invalid_request`, `invalid_grant`).", _NO_STORE),
    "401": _json(
        "OAuthError",
        "`invalid_client`; with `WWW-Authenticate: Basic` when HTTP Basic was used.",
        {**_NO_STORE, "WWW-Authenticate": {"schema": {"type": "string", "example": 'Basic realm="oauth"'}}},
    ),
    "429": _json(
        "OAuthError",
        "`slow_down`: too many attempts; wait `Retry-After` seconds.",
        {**_NO_STORE, "Retry-After": {"schema": {"type": "integer"}}},
    ),
    "503": _json("OAuthError", "`temporarily_unavailable`: the database cannot be reached."),
}
_SECURITY = [{"clientBasic": []}, {}]


def _form(name: str) -> dict[str, Any]:
    return {"required": True, "content": {FORM: {"schema": _ref(name)}}}


PATHS: dict[str, Any] = {
    "/oauth/token": {
        "post": {
            "operationId": "oauth_token",
            "tags": ["oauth"],
            "summary": "Obtain an access token (client credentials, RFC 6749 §4.4; token exchange, RFC 8693)",
            "description": CLIENT_AUTH,
            "security": _SECURITY,
            "requestBody": _form("TokenRequest"),
            "responses": {
                "200": _json("TokenResponse", "An RFC 9068 JWT access token.", _NO_STORE),
                **_ERRORS,
            },
        }
    },
    "/oauth/introspect": {
        "post": {
            "operationId": "oauth_introspect",
            "tags": ["oauth"],
            "summary": "Introspect an access token (RFC 7662)",
            "description": CLIENT_AUTH
            + " A client of the token's organisation (or one staff marked as a platform resource server)"
            " learns its claims; any other answer is `active: false`.",
            "security": _SECURITY,
            "requestBody": _form("IntrospectionRequest"),
            "responses": {
                "200": _json(
                    "IntrospectionResponse", "The token's claims, or only `active: false`.", _NO_STORE
                ),
                **{code: _ERRORS[code] for code in ("400", "401", "429", "503")},
            },
        }
    },
    "/oauth/revoke": {
        "post": {
            "operationId": "oauth_revoke",
            "tags": ["oauth"],
            "summary": "Revoke an access token (RFC 7009)",
            "description": CLIENT_AUTH + " Answers 200 for an unknown or already revoked token too (§2.2).",
            "security": _SECURITY,
            "requestBody": _form("RevocationRequest"),
            "responses": {
                "200": {"description": "Revoked, or nothing to revoke."},
                **{code: _ERRORS[code] for code in ("400", "401", "429", "503")},
            },
        }
    },
    "/.well-known/jwks.json": {
        "get": {
            "operationId": "oauth_jwks",
            "tags": ["oauth"],
            "summary": "The public keys that sign access tokens (RFC 7517)",
            "security": [{}],
            "responses": {"200": _json("JWKS", "The JSON Web Key Set (cacheable).")},
        }
    },
    "/.well-known/oauth-authorization-server": {
        "get": {
            "operationId": "oauth_metadata",
            "tags": ["oauth"],
            "summary": "Authorization server metadata (RFC 8414)",
            "security": [{}],
            "responses": {"200": _json("AuthorizationServerMetadata", "The server's metadata (cacheable).")},
        }
    },
}


def add_oauth_endpoints(result: dict, generator, request, public) -> dict:
    """Add the OAuth protocol endpoints, their form bodies and RFC error shapes to the schema."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components.setdefault("securitySchemes", {})["clientBasic"] = {
        "type": "http",
        "scheme": "basic",
        "description": "OAuth client authentication: client id and secret (RFC 6749 §2.3.1).",
    }
    result.setdefault("paths", {}).update(PATHS)
    tags = result.setdefault("tags", [])
    if not any(tag.get("name") == "oauth" for tag in tags):
        tags.append({"name": "oauth", "description": "OAuth 2.0 protocol endpoints for services."})
    return result
