"""Edges of the machine error shapes: a lone surrogate in JSON is a 400 (never a 500), every REST
404 and pre-view refusal carries a `code`, and the `/.well-known/` documents refuse other methods
in JSON."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from rest_framework.exceptions import ParseError

from portal.api.parsers import JSONParser
from tests.factories import ScopeFactory

pytestmark = pytest.mark.django_db

SURROGATE = '"\\ud800"'  # valid JSON, but no text: a lone UTF-16 surrogate


def _json_error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:200])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return json.loads(response.content)


def test_the_parser_refuses_lone_surrogates_anywhere_and_keeps_real_text():
    for body in (SURROGATE, f'{{"a": [{SURROGATE}]}}', f"{{{SURROGATE}: 1}}"):
        with pytest.raises(ParseError):
            JSONParser().parse(io.BytesIO(body.encode()))
    # A surrogate pair is one astral character; accents and plain ASCII pass untouched.
    parsed = JSONParser().parse(io.BytesIO(b'{"name": "caf\\u00e9 \\ud83d\\ude00", "n": [1, null, true]}'))
    assert parsed == {"name": "café 😀", "n": [1, None, True]}


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("post", "/api/v1/orgs/acme/api-keys/", '{"name": "x", "environment": @}'),
        ("post", "/api/v1/orgs/acme/m2m-apps/", '{"name": "x", "token_endpoint_auth_method": @}'),
        ("post", "/api/v1/orgs/acme/webhooks/", '{"url": "https://hooks.example.com/x", "event_types": [@]}'),
        ("patch", "/api/v1/orgs/acme/policy/api-keys/", '{"new_live_api_keys": @}'),
    ],
)
def test_a_lone_surrogate_in_a_json_choice_field_is_a_400_not_a_500(
    owner_client, scopes, method, path, template
):
    owner_client.raise_request_exception = False
    body = template.replace("@", SURROGATE).encode()
    response = owner_client.generic(method.upper(), path, body, content_type="application/json")
    assert _json_error(response, 400)["code"] == "parse_error"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orgs/globex/api-keys/",  # another organisation (OrganizationAccess)
        "/api/v1/orgs/acme/api-keys/AAAAAAAAAAAA/",  # unknown object (get_object_or_404)
        "/api/v1/orgs/acme/m2m-apps/999999/",
        "/api/v1/orgs/acme/api-keys/?format=nope",  # DRF's format negotiation
    ],
)
def test_a_rest_404_carries_a_machine_readable_code(make_key, other_organization, path):
    ScopeFactory(name="m2m_apps:manage")
    _row, key = make_key(scopes=["api_keys:manage", "m2m_apps:manage"])
    response = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {key}").get(path)
    assert _json_error(response, 404)["code"] == "not_found"


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/.well-known/oauth-authorization-server"])
def test_a_wrong_method_on_a_well_known_document_answers_json(path):
    response = Client(raise_request_exception=False).post(path)
    body = _json_error(response, 405)
    assert body["code"] == "method_not_allowed" and body["detail"]
    assert response["Allow"] == "GET, HEAD"
    assert Client().head(path).status_code == 200
