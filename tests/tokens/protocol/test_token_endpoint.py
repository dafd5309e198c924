"""POST /oauth/token: RFC 6749 §4.4 success and every §5.2 error, with status, body and headers."""

from __future__ import annotations

import json

import jwt
import pytest
from django.conf import settings

from tests.tokens.conftest import basic, request_token
from tokens.clients.services import m2m_app_revoke

pytestmark = pytest.mark.django_db


def _body(response) -> dict:
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)


def _assert_no_store(response):
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_basic_auth_success_response(client, app):
    response = request_token(client, app)
    assert response.status_code == 200
    body = _body(response)
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert "refresh_token" not in body
    _assert_no_store(response)


def test_body_auth_success(client, app):
    response = client.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret},
    )
    assert response.status_code == 200
    assert _claims(_body(response)["access_token"])["client_id"] == app.client_id
    _assert_no_store(response)


def test_no_scope_gets_all_allowed_scopes(client, app):
    body = _body(request_token(client, app))
    assert body["scope"] == "orders:read orders:write"
    assert _claims(body["access_token"])["scope"] == "orders:read orders:write"


def test_requested_subset_of_scopes(client, app):
    body = _body(request_token(client, app, scope="orders:read"))
    assert body["scope"] == "orders:read"
    assert _claims(body["access_token"])["scope"] == "orders:read"


def test_scope_outside_allowed_set_is_invalid_scope(client, app):
    response = request_token(client, app, scope="orders:read billing:read")
    assert response.status_code == 400
    assert _body(response)["error"] == "invalid_scope"
    _assert_no_store(response)


def test_unknown_scope_is_invalid_scope(client, app):
    response = request_token(client, app, scope="nope:nothing")
    assert response.status_code == 400
    assert _body(response)["error"] == "invalid_scope"


def test_unsupported_grant_type(client, app):
    for grant_type in ("password", "authorization_code", "refresh_token", "urn:x:custom"):
        response = request_token(client, app, grant_type=grant_type)
        assert response.status_code == 400
        assert _body(response)["error"] == "unsupported_grant_type"
        _assert_no_store(response)


def test_missing_grant_type_is_invalid_request(client, app):
    response = client.post("/oauth/token", {}, HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret))
    assert response.status_code == 400
    assert _body(response)["error"] == "invalid_request"
    _assert_no_store(response)


@pytest.mark.parametrize("param", ["grant_type", "scope", "client_id"])
def test_repeated_parameter_is_invalid_request(client, app, param):
    values = {
        "grant_type": "client_credentials",
        "scope": "orders:read",
        "client_id": app.client_id,
        "resource": settings.PORTAL_DEFAULT_AUDIENCE,
    }
    body = f"{param}={values[param]}&{param}={values[param]}"
    if param != "grant_type":
        body += "&grant_type=client_credentials"
    response = client.post(
        "/oauth/token",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 400
    assert _body(response)["error"] == "invalid_request"
    _assert_no_store(response)


def test_wrong_secret_with_basic_is_401_with_basic_challenge(client, app):
    response = request_token(client, app, secret="ips_" + "A" * 32)
    assert response.status_code == 401
    assert _body(response)["error"] == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic ")
    _assert_no_store(response)


def test_unknown_client_and_wrong_secret_answer_identically(client, app):
    wrong_secret = client.post(
        "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id, "ips_x")
    )
    unknown_client = client.post(
        "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic("m2m_nobody", "ips_x")
    )
    assert wrong_secret.status_code == unknown_client.status_code == 401
    assert wrong_secret.content == unknown_client.content
    assert wrong_secret["WWW-Authenticate"] == unknown_client["WWW-Authenticate"]


def test_wrong_secret_in_body_is_invalid_client(client, app):
    response = client.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": "wrong"},
    )
    assert response.status_code == 401
    assert _body(response)["error"] == "invalid_client"
    _assert_no_store(response)


def test_no_credentials_is_invalid_client(client, app):
    response = client.post("/oauth/token", {"grant_type": "client_credentials", "client_id": app.client_id})
    assert response.status_code == 401
    assert _body(response)["error"] == "invalid_client"


def test_garbage_basic_header_is_invalid_client(client, app):
    response = client.post(
        "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION="Basic %%%not-base64"
    )
    assert response.status_code == 401
    assert _body(response)["error"] == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic ")


def test_two_authentication_methods_at_once_are_invalid_request(client, app):
    # RFC 6749 §5.2: a request that "utilizes more than one mechanism for authenticating the
    # client" is invalid_request (400), not a failed authentication (was 401 invalid_client).
    response = client.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "client_secret": app.client_secret},
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 400
    assert _body(response)["error"] == "invalid_request"
    assert "WWW-Authenticate" not in response
    _assert_no_store(response)


def test_revoked_application_is_invalid_client(client, app, owner):
    m2m_app_revoke(application=app.application, actor=owner)
    response = request_token(client, app)
    assert response.status_code == 401
    assert _body(response)["error"] == "invalid_client"


def test_credentials_in_url_query_are_refused(client, app):
    response = client.post(
        f"/oauth/token?client_id={app.client_id}&client_secret={app.client_secret}",
        {"grant_type": "client_credentials"},
    )
    assert response.status_code == 400
    assert _body(response)["error"] == "invalid_request"
    assert "access_token" not in _body(response)
    _assert_no_store(response)


def test_get_is_refused_with_json(client, app):
    response = client.get("/oauth/token", {"grant_type": "client_credentials"})
    assert response.status_code == 405
    assert _body(response)["error"] == "invalid_request"
    _assert_no_store(response)


def test_json_body_is_not_accepted(client, app):
    response = client.post(
        "/oauth/token",
        json.dumps({"grant_type": "client_credentials"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 400
    assert _body(response)["error"] == "invalid_request"


def test_no_resource_gets_default_audience(client, app):
    token = _body(request_token(client, app))["access_token"]
    assert _claims(token)["aud"] == settings.PORTAL_DEFAULT_AUDIENCE


def test_parameters_sent_empty_count_as_omitted(client, app):
    # RFC 6749 §3.2: `scope=` and `resource=` ask for nothing in particular (oauthlib reads `scope=`
    # as one empty scope, which used to be invalid_scope).
    body = _body(request_token(client, app, scope="", resource=""))
    assert body["scope"] == "orders:read orders:write"
    assert _claims(body["access_token"])["aud"] == settings.PORTAL_DEFAULT_AUDIENCE
    assert _body(request_token(client, app, scope="orders:read  orders:write"))["scope"] == (
        "orders:read orders:write"
    )


def test_resource_selects_an_allowed_audience(client, make_app, catalogue):
    creds = make_app(audiences=["https://orders.example.com/api", "https://billing.example.com"])
    token = _body(request_token(client, creds, resource="https://billing.example.com"))["access_token"]
    assert _claims(token)["aud"] == "https://billing.example.com"


def test_resource_outside_audiences_is_invalid_target(client, make_app, catalogue):
    creds = make_app(audiences=["https://orders.example.com/api"])
    for resource in ("https://evil.example.com", "https://orders.example.com/api/more", "not a uri"):
        response = request_token(client, creds, resource=resource)
        assert response.status_code == 400
        assert _body(response)["error"] == "invalid_target"
        _assert_no_store(response)


def test_per_application_token_lifetime(client, make_app):
    creds = make_app(token_lifetime=3600)
    body = _body(request_token(client, creds))
    claims = _claims(body["access_token"])
    assert body["expires_in"] == 3600
    assert claims["exp"] - claims["iat"] == 3600


def test_issuing_stores_no_token_and_needs_few_queries(client, app, django_assert_max_num_queries):
    from oauth2_provider.models import AccessToken

    request_token(client, app)  # first call creates the signing key
    with django_assert_max_num_queries(4):
        response = request_token(client, app)
    assert response.status_code == 200
    assert AccessToken.objects.count() == 0


#: RFC 6749 §5.2: the members of a token endpoint error response.
ERROR_MEMBERS = {"error", "error_description", "error_uri"}


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "password"},  # unsupported_grant_type
        {"grant_type": "client_credentials", "scope": "no-such-scope"},  # invalid_scope
        {"grant_type": "client_credentials", "resource": "https://elsewhere.example"},  # invalid_target
    ],
    ids=["unsupported_grant_type", "invalid_scope", "invalid_target"],
)
def test_errors_do_not_echo_a_state_parameter(client, app, data):
    """`state` is no token endpoint parameter (§4.4.2) nor error member (§5.2); oauthlib copied it
    into the error JSON, so the endpoint reflected client input (here markup)."""
    response = client.post(
        "/oauth/token",
        {**data, "state": "<script>alert(1)</script>"},
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 400
    body = json.loads(response.content)
    assert set(body) <= ERROR_MEMBERS and body["error"], body
