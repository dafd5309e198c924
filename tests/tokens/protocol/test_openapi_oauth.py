"""The OAuth endpoints are described in the OpenAPI schema: form bodies and RFC error shapes (issue 17)."""

from __future__ import annotations

import base64

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _resolve(schema, ref_holder):
    return schema["components"]["schemas"][ref_holder["$ref"].rsplit("/", 1)[1]]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
def test_oauth_endpoints_take_form_bodies_and_answer_rfc_errors(schema, path):
    operation = schema["paths"][path]["post"]
    body = operation["requestBody"]["content"]
    assert list(body) == ["application/x-www-form-urlencoded"]
    assert (
        "client_assertion"
        in _resolve(schema, body["application/x-www-form-urlencoded"]["schema"])["properties"]
    )
    error = _resolve(schema, operation["responses"]["401"]["content"]["application/json"]["schema"])
    assert error["required"] == ["error"] and "invalid_client" in error["properties"]["error"]["enum"]
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    assert {"clientBasic": []} in operation["security"]


def test_well_known_documents_are_described(schema):
    jwks = schema["paths"]["/.well-known/jwks.json"]["get"]["responses"]["200"]
    assert _resolve(schema, jwks["content"]["application/json"]["schema"])["required"] == ["keys"]
    metadata = schema["paths"]["/.well-known/oauth-authorization-server"]["get"]["responses"]["200"]
    assert "issuer" in _resolve(schema, metadata["content"]["application/json"]["schema"])["required"]


def test_the_described_error_is_what_the_endpoint_answers(client, schema):
    """A real refusal has exactly the documented shape: `error` from the enum, `error_description`."""
    basic = base64.b64encode(b"m2m_nobody:wrong").decode()
    response = client.post(
        "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    assert response.status_code == 401
    body = response.json()
    documented = schema["components"]["schemas"]["OAuthError"]
    assert (
        set(body) <= set(documented["properties"])
        and body["error"] in documented["properties"]["error"]["enum"]
    )
    assert response["WWW-Authenticate"].startswith("Basic")
