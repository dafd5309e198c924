"""The served OpenAPI document (`/api/schema/`) as JSON Schema, to check real answers against what it
declares: `conformance_errors("GET", path, 200, body) == []`."""

from __future__ import annotations

import json
import re
from functools import cache

import jsonschema
from django.test import Client


@cache
def openapi() -> dict:
    """Return the schema the portal serves (the same for the whole run: it is built from the code)."""
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def _resolve(node):
    """Inline `$ref`s and turn OpenAPI 3.0's `nullable` into JSON Schema's null type."""
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = openapi()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _resolve(target)
    # `format` is left out: jsonschema checks few formats, and an OpenAPI one (`email`) is advice.
    out = {k: _resolve(v) for k, v in node.items() if k not in ("nullable", "example", "readOnly", "format")}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def operation(method: str, path: str) -> dict:
    """Return the operation whose path template matches a concrete path."""
    bare = path.split("?", 1)[0]
    for template, operations in openapi()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, bare) and method.lower() in operations:
            return operations[method.lower()]
    raise AssertionError(f"no operation for {method} {path}")


def conformance_errors(method: str, path: str, status: int, body) -> list[str]:
    """Return why a served body does not match what the schema declares for its status ([]: it does)."""
    declared = operation(method, path).get("responses", {}).get(str(status))
    if declared is None:
        return [f"status {status} is not declared for {method} {path}"]
    content = declared.get("content", {}).get("application/json")
    if content is None:
        return []  # declared without a body schema: any body
    validator = jsonschema.Draft202012Validator(_resolve(content["schema"]))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
