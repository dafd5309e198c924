"""Every 4xx/5xx in its endpoint family's format, also those no view gave (an unknown path, a
request refused before any view, an unhandled error, a database outage), and no 500 for bad input."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client

from tests.portal.test_settings import STRONG, _manage

pytestmark = pytest.mark.django_db


def _json(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), (
        response.status_code,
        response["Content-Type"],
        response.content[:200],
    )
    return json.loads(response.content)


@pytest.mark.parametrize("path", ["/api/v1/no-such-endpoint", "/api/v1/orgs/acme/no-such-thing/"])
def test_an_unknown_api_path_answers_drf_style_json_404(path):
    response = Client(raise_request_exception=False).get(path)
    assert response.status_code == 404
    assert "detail" in _json(response)


def test_an_unknown_oauth_path_answers_rfc6749_style_json_404():
    response = Client(raise_request_exception=False).post(
        "/oauth/tokens", {"grant_type": "client_credentials"}
    )
    assert response.status_code == 404
    assert "error" in _json(response)


def test_an_unknown_well_known_document_answers_json_404():
    response = Client(raise_request_exception=False).get("/.well-known/openid-configuration")
    assert response.status_code == 404
    _json(response)


@pytest.mark.urls("tests.security.urls_boom")
def test_a_server_error_under_api_answers_json():
    response = Client(raise_request_exception=False).get("/api/v1/boom")
    assert response.status_code == 500
    assert "detail" in _json(response)


@pytest.mark.urls("tests.security.urls_boom")
def test_a_server_error_under_oauth_answers_rfc6749_json():
    response = Client(raise_request_exception=False).post("/oauth/boom")
    assert response.status_code == 500
    assert _json(response)["error"] == "server_error"


def test_too_many_form_fields_on_the_api_answers_drf_json(make_key):
    _row, key = make_key(scopes=["api_keys:manage"])
    body = urlencode([(f"f{i}", "x") for i in range(300)])
    response = Client(raise_request_exception=False).post(
        "/api/v1/orgs/acme/api-keys/",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_API_KEY=key,
    )
    assert response.status_code == 400
    assert "detail" in _json(response)


@pytest.mark.parametrize("path", ["/api/v1/keys/verify", "/api/v1/orgs/acme/api-keys/"])
def test_deeply_nested_json_is_a_400_parse_error_not_a_500(make_key, path):
    """DRF's JSONParser turns ValueError into 400 but not RecursionError: 5,000 '[' (5 KB) -> HTML 500
    plus an ERROR traceback, on every DRF endpoint that reads a JSON body."""
    _row, key = make_key(scopes=["api_keys:manage", "api_keys:verify"])
    response = Client(raise_request_exception=False).post(
        path, data="[" * 5000, content_type="application/json", HTTP_X_API_KEY=key
    )
    assert response.status_code == 400, (response.status_code, response.content[:120])
    assert _json(response)["code"] == "parse_error"


# --- a real database outage (PostgreSQL on a closed port), production settings, in a subprocess ---

_OUTAGE_SCRIPT = (
    "import json; from django.test import Client; c = Client(raise_request_exception=False); out = {}\n"
    "for p in ('/healthz', '/.well-known/jwks.json', '/.well-known/oauth-authorization-server'):\n"
    "    r = c.get(p, secure=True, HTTP_HOST='portal.example.com')\n"
    "    out[p] = [r.status_code, r['Content-Type'], r.get('Retry-After')]\n"
    "print('RESULT ' + json.dumps(out))"
)


@pytest.fixture(scope="module")
def outage() -> dict:
    result = _manage(
        "shell",
        "-c",
        _OUTAGE_SCRIPT,
        **{**STRONG, "DEBUG": "0", "DATABASE_URL": "postgresql://portal:x@127.0.0.1:1/portal"},
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, result.stdout + result.stderr
    return json.loads(line[len("RESULT ") :])


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/.well-known/oauth-authorization-server"])
def test_machine_documents_answer_json_503_when_the_database_is_down(outage, path):
    status, content_type, retry_after = outage[path]
    assert status == 503 and retry_after
    assert content_type.startswith("application/json"), content_type


def test_healthz_503_carries_retry_after_as_documented(outage):
    """docs/operations.md: every 503 of a database outage, /healthz included, carries Retry-After."""
    status, content_type, retry_after = outage["/healthz"]
    assert status == 503 and content_type.startswith("application/json")
    assert retry_after
