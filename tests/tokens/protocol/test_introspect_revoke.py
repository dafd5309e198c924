"""POST /oauth/introspect (RFC 7662) and POST /oauth/revoke (RFC 7009)."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.views.debug import SafeExceptionReporterFilter

from tests.tokens.conftest import basic, obtain_token
from tokens.models import RevokedToken
from tokens.signing.issuing import access_token_claims, sign_access_token

pytestmark = pytest.mark.django_db


def introspect(client, creds, token, **extra):
    return client.post(
        "/oauth/introspect",
        {"token": token, **extra},
        HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
    )


def revoke(client, creds, token, **extra):
    return client.post(
        "/oauth/revoke",
        {"token": token, **extra},
        HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
    )


def _json(response) -> dict:
    assert response["Cache-Control"] == "no-store"
    return json.loads(response.content)


def test_introspect_live_token_of_own_organisation(client, app, make_app, token_for):
    token = token_for(app)
    claims = jwt.decode(token, options={"verify_signature": False})
    sibling = make_app(name="Gateway")  # another app of the same organisation
    body = _json(introspect(client, sibling, token))
    assert body["active"] is True
    assert body["token_type"] == "Bearer"
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "org_id"):
        assert body[name] == claims[name]


def test_introspect_with_body_authentication(client, app, token_for):
    token = token_for(app)
    response = client.post(
        "/oauth/introspect", {"token": token, "client_id": app.client_id, "client_secret": app.client_secret}
    )
    assert _json(response)["active"] is True


def test_introspect_other_organisations_token_is_inactive(client, app, other_app, token_for):
    token = token_for(app)
    assert _json(introspect(client, other_app, token)) == {"active": False}


def test_resource_server_sees_every_organisation(client, app, other_app, token_for):
    other_app.application.is_resource_server = True
    other_app.application.save()
    assert _json(introspect(client, other_app, token_for(app)))["active"] is True


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "ipk_live_notajwt"])
def test_introspect_garbage_is_inactive(client, app, garbage):
    assert _json(introspect(client, app, garbage)) == {"active": False}


def test_introspect_expired_token_is_inactive(client, app):
    token_for_app = access_token_claims(
        application=app.application,
        scopes=["orders:read"],
        audience="http://127.0.0.1:8000/api",
        lifetime=300,
        secret_id=app.application.secrets.get().public_id,
    )
    token_for_app["iat"] -= 1000
    token_for_app["nbf"] -= 1000
    token_for_app["exp"] = int(time.time()) - 600
    assert _json(introspect(client, app, sign_access_token(token_for_app))) == {"active": False}


def test_introspect_forged_token_is_inactive(client, app, token_for):
    genuine = token_for(app)
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, stranger, algorithm="RS256", headers={"typ": "at+jwt", "kid": header["kid"]})
    assert _json(introspect(client, app, forged)) == {"active": False}


def test_introspect_requires_client_authentication(client, app, token_for):
    token = token_for(app)
    response = client.post("/oauth/introspect", {"token": token})
    assert response.status_code == 401
    assert _json(response)["error"] == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic")
    wrong = client.post(
        "/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=basic(app.client_id, "ips_no")
    )
    assert wrong.status_code == 401
    assert wrong.content == response.content


def test_introspect_missing_token_is_invalid_request(client, app):
    response = client.post(
        "/oauth/introspect", {}, HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret)
    )
    assert response.status_code == 400
    assert _json(response)["error"] == "invalid_request"


def test_revoke_own_token_then_introspection_and_whoami_reject_it(client, app, token_for):
    token = token_for(app)
    other_token = token_for(app)
    response = revoke(client, app, token, token_type_hint="access_token")
    assert response.status_code == 200
    assert RevokedToken.objects.count() == 1
    assert _json(introspect(client, app, token)) == {"active": False}
    whoami = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert whoami.status_code == 401
    assert whoami["WWW-Authenticate"].startswith("Bearer")
    # Only that token: the application's other tokens still work.
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {other_token}").status_code == 200


def test_revoke_twice_is_fine(client, app, token_for):
    token = token_for(app)
    assert revoke(client, app, token).status_code == 200
    assert revoke(client, app, token).status_code == 200
    assert RevokedToken.objects.count() == 1


@pytest.mark.parametrize("token", ["unknown", "a.b.c", "eyJ0eXAiOiJhdCtqd3QifQ.e30.x"])
def test_revoke_unknown_or_garbage_token_is_200(client, app, token):
    response = revoke(client, app, token, token_type_hint="refresh_token")
    assert response.status_code == 200
    assert RevokedToken.objects.count() == 0


def test_client_cannot_revoke_another_clients_token(client, app, make_app, token_for):
    token = token_for(app)
    sibling = make_app(name="Gateway")
    assert revoke(client, sibling, token).status_code == 200
    assert RevokedToken.objects.count() == 0
    assert _json(introspect(client, app, token))["active"] is True


def test_revoke_requires_client_authentication(client, app, token_for):
    response = client.post("/oauth/revoke", {"token": token_for(app)})
    assert response.status_code == 401
    assert _json(response)["error"] == "invalid_client"
    assert RevokedToken.objects.count() == 0


@pytest.mark.parametrize("path", ["/oauth/introspect", "/oauth/revoke"])
def test_get_and_query_credentials_are_refused(client, app, path):
    response = client.get(path)
    assert response.status_code == 405
    assert _json(response)["error"] == "invalid_request"
    response = client.post(
        f"{path}?client_id={app.client_id}&client_secret={app.client_secret}", {"token": "x"}
    )
    assert response.status_code == 400
    assert _json(response)["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
def test_secrets_posted_to_the_oauth_endpoints_are_hidden_from_error_reports(client, app, path):
    """A secret, an assertion or a token posted to any OAuth endpoint is masked in Django's error
    reports (the DEBUG page, AdminEmailHandler): introspection and revocation showed them."""
    token = obtain_token(client, app)
    body = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    response = client.post(path, {**body, "token": token})
    assert response.status_code == 200, response.content
    reported = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert reported["client_secret"] != app.client_secret
    if path != "/oauth/token":
        assert reported["token"] != token
