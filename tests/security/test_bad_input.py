"""Regressions found by fuzzing, and the bounds on credential headers and request bodies."""

from __future__ import annotations

import json

import pytest

from portal.principal import INVALID_CREDENTIAL, MAX_CREDENTIAL_LENGTH
from tests.security.conftest import ALL_SCOPES
from tests.tokens.conftest import basic

pytestmark = pytest.mark.django_db

OAUTH_PATHS = ["/oauth/token", "/oauth/introspect", "/oauth/revoke"]


def oauth_json(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json" and response["Cache-Control"] == "no-store"
    body = json.loads(response.content)
    assert body["error"] == error
    return body


@pytest.mark.parametrize("path", OAUTH_PATHS)
def test_a_form_body_that_is_not_utf8_is_an_oauth_error_not_an_html_page(client, path):
    response = client.generic(
        "POST",
        path,
        "grant_type=client_credentials&client_id=caf\xe9".encode("latin-1"),
        content_type="application/x-www-form-urlencoded; charset=latin-1",
    )
    oauth_json(response, 400, "invalid_request")


@pytest.mark.parametrize("path", OAUTH_PATHS)
def test_a_body_over_the_limit_is_413_in_oauth_form(client, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post(path, {"grant_type": "client_credentials", "client_secret": "x" * 2048})
    oauth_json(response, 413, "invalid_request")


def test_a_huge_basic_header_is_refused_without_a_query(client, django_assert_max_num_queries, make_app):
    app = make_app()
    header = basic(app.client_id, app.client_secret + "x" * MAX_CREDENTIAL_LENGTH)
    with django_assert_max_num_queries(0):
        response = client.post(
            "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header
        )
    oauth_json(response, 401, "invalid_client")


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_API_KEY": "ipk_live_" + "a" * MAX_CREDENTIAL_LENGTH},
        {"HTTP_AUTHORIZATION": "Bearer ipk_live_" + "a" * MAX_CREDENTIAL_LENGTH},
        {"HTTP_AUTHORIZATION": "Bearer eyJ" + "a.b" * MAX_CREDENTIAL_LENGTH},
    ],
    ids=["x-api-key", "bearer-key", "bearer-jwt"],
)
def test_huge_machine_credentials_are_refused_without_a_query(client, django_assert_max_num_queries, headers):
    with django_assert_max_num_queries(0):
        response = client.get("/api/v1/whoami", **headers)
    assert response.status_code == 401 and response.json() == {
        "detail": INVALID_CREDENTIAL,
        "code": "authentication_failed",
    }


def test_a_real_key_just_under_the_bound_still_works(client, make_key):
    _row, key = make_key(scopes=ALL_SCOPES)
    assert client.get("/api/v1/whoami", HTTP_X_API_KEY=key).status_code == 200
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


def test_log_redaction_keeps_the_public_parts():
    from portal.infra.log_filters import redact

    key = "ipk_live_AbCdEfGhIjKl" + "x" * 32 + "ZZZZZZ"
    line = redact(
        f"Not Found: /api/v1/orgs/acme/api-keys/{key}/ and ips_abcd0123456789abcdef and eyJa.eyJb.sig"
    )
    assert line == (
        "Not Found: /api/v1/orgs/acme/api-keys/ipk_live_AbCdEfGhIjKl[redacted]/ "
        "and ips_abcd[redacted] and [redacted-jwt]"
    )
    assert redact("Gone: /invitations/abc_DEF-123/") == "Gone: /invitations/[redacted]/"
    assert redact("nothing to hide") == "nothing to hide"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/keys/verify", "application/json"),
        ("/api/v1/orgs/acme/api-keys/", "application/json"),
        ("/api/v1/keys/verify", "application/x-www-form-urlencoded"),
    ],
)
def test_an_authenticated_api_body_over_the_limit_is_413(client, settings, make_key, path, content_type):
    # DRF's JSON parser reads the whole stream; the middleware bounds it before any parser runs.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    _row, key = make_key(scopes=ALL_SCOPES)
    body = json.dumps({"key": "x" * 5000, "name": "y"})
    response = client.generic("POST", path, body, content_type=content_type, HTTP_X_API_KEY=key)
    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is too large.", "code": "too_large"}
    small = client.generic(
        "POST", path, json.dumps({"key": "x", "name": "ok"}), "application/json", HTTP_X_API_KEY=key
    )
    assert small.status_code in (200, 201)
