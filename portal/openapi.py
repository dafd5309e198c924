"""Declare once, in the OpenAPI schema, the refusals every organisation endpoint can give (a hook).

Any operation under `/api/v1/orgs/<slug>/` answers 401 without a usable credential, 403 when the
caller's role or the credential's scopes do not allow it, 404 for an organisation the caller
is not in, an object not in it, or a `page` past the end, 429 when an API key's rate limit or the
failed-verification pause refuses the call, and 503 during a database outage; one that takes a
body or query parameters answers 400 for bad input. A view declares these only where it says
more (which code, which object); this hook adds the rest, and gives the `{"detail", "code"}` body
to the refusals a view declared by description alone (its 409s), so the schema lists every
status the API serves with its body.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

#: The operations this hook completes: the organisation-scoped REST API.
ORG_PREFIX = "/api/v1/orgs/"

#: The `{"detail", "code"}` refusal body (portal.api.errors). The name is the one the
#: secret-scanning view's `ErrorSerializer` already gives it, so the schema names one error shape.
ERROR = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["code", "detail"],
}

#: A 400's body: DRF's field errors, or `{"detail", "code"}` for a refusal of the request as a whole.
BAD_INPUT = "BadInput"
BAD_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'Field errors (`{"<field>": ["message", …]}`: a message or a list of them, nested for '
    'nested fields; `non_field_errors` for the body as a whole), or `{"detail", "code"}` (`parse_error`, '
    "`url_nul`, …).",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "non_field_errors": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": True,
}

#: What every organisation endpoint may answer: status -> (component, description).
REFUSALS: dict[str, tuple[str, str]] = {
    "401": (
        ERROR,
        "No usable credential (`not_authenticated`, `authentication_failed`); with "
        '`WWW-Authenticate: Bearer realm="api"`.',
    ),
    "403": (
        ERROR,
        "Not allowed: the caller's role, the credential's scopes (`insufficient_scope`) or a missing "
        "step-up refuse it (`not_manager`, `not_owner`, `step_up_required`, …; docs/security.md).",
    ),
    "404": (
        ERROR,
        "No such organisation (or not one of yours), no such object in it, or a `page` past the end "
        "(`not_found`).",
    ),
    "429": (
        ERROR,
        "Too many requests: the API key's rate limit (`rate_limited`) or, after repeated failed "
        "verifications from this address, `throttled`; with `Retry-After` (seconds).",
    ),
    "503": (
        ERROR,
        "The database cannot be reached (`unavailable`); with `Retry-After`. Retry shortly.",
    ),
}
BAD_REQUEST = (BAD_INPUT, "Bad input: a field error in the body or a query parameter.")

_METHODS = ("get", "put", "post", "patch", "delete")


def _takes_input(operation: dict[str, Any]) -> bool:
    """Return whether the operation reads a body or query parameters (which it may refuse with 400)."""
    return "requestBody" in operation or any(p.get("in") == "query" for p in operation.get("parameters", []))


def _declare(responses: dict[str, Any], status: str, component: str, description: str) -> None:
    """Declare `status` with `component`'s body; a view's own description, where it has one, stays."""
    declared = responses.setdefault(status, {"description": description})
    declared.setdefault(
        "content", {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}}
    )


def add_organization_refusals(result: dict, generator, request, public) -> dict:
    """Declare 401, 403, 404, 429 and 503 on every organisation operation, 400 on those that take
    input, and the error body on any other refusal a view declared without one (409)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ERROR, deepcopy(ERROR_SCHEMA))
    schemas.setdefault(BAD_INPUT, deepcopy(BAD_INPUT_SCHEMA))
    for path, item in result.get("paths", {}).items():
        if not path.startswith(ORG_PREFIX):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, (component, description) in REFUSALS.items():
                _declare(responses, status, component, description)
            if _takes_input(operation):
                _declare(responses, "400", *BAD_REQUEST)
            for status, declared in responses.items():
                if status.startswith(("4", "5")) and "content" not in declared:
                    _declare(responses, status, ERROR, declared.get("description", ""))
            operation["responses"] = dict(sorted(responses.items()))
    return result
