"""RFC 8693 token exchange at /oauth/token: a gateway trades a customer's API key for a short-lived JWT.

Real HTTP against `live_server` (requests and authlib); the issued tokens are checked with the
shipped verifier against the served JWKS, at whoami, and at introspection.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from unittest.mock import ANY

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from credentials.api_keys import keys
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_request, api_key_revoke
from credentials.governance.reviews import credential_suspend
from tests.tokens.conftest import basic
from tokens.clients.services import m2m_app_set_exchange
from tokens.protocol.exchange import (
    ACCESS_TOKEN_TYPE,
    API_KEY_TOKEN_TYPE,
    GRANT_TYPE,
    JWT_TOKEN_TYPE,
    SUBJECT_PREFIX,
)
from tokens.verifier import TokenVerifier

SERVICE_AUDIENCE = "https://orders.example.com"


@pytest.fixture
def gateway(make_app, other_organization, outsider, catalogue):
    """The platform's API gateway: an M2M application of another organisation, allowed by staff."""
    creds = make_app(
        organization=other_organization,
        app_owner=outsider,
        name="API gateway",
        audiences=[SERVICE_AUDIENCE],
        token_lifetime=900,
    )
    creds.application = m2m_app_set_exchange(application=creds.application, allowed=True, actor=None)
    return creds


@pytest.fixture
def customer_key(organization, owner, scopes):
    """A customer's live API key in `acme` and its plaintext."""
    return api_key_create(
        organization=organization,
        name="shop",
        owner=owner,
        scopes=["orders:read", "orders:write"],
        actor=owner,
    )


def exchange_form(key: str, **params) -> dict:
    return {
        "grant_type": GRANT_TYPE,
        "subject_token": key,
        "subject_token_type": API_KEY_TOKEN_TYPE,
        **params,
    }


def post_exchange(url: str, creds, key: str, *, auth=None, **params) -> requests.Response:
    with requests.Session() as session:  # closed, so no kept-alive connection holds a DB session
        return session.post(
            url + "/oauth/token",
            data=exchange_form(key, **params),
            headers={"Authorization": auth or basic(creds.client_id, creds.client_secret)},
            timeout=10,
        )


def verifier_for(live_server, audience=settings.PORTAL_DEFAULT_AUDIENCE) -> TokenVerifier:
    return TokenVerifier(
        issuer=settings.PORTAL_ISSUER, audience=audience, jwks_url=live_server.url + "/.well-known/jwks.json"
    )


# --- over real HTTP ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_gateway_exchanges_a_key_and_services_validate_only_the_jwt(
    live_server, gateway, customer_key, make_app
):
    api_key, plaintext = customer_key
    started = int(time.time())
    response = post_exchange(live_server.url, gateway, plaintext)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "orders:read orders:write"
    assert body["expires_in"] == settings.PORTAL_EXCHANGE_TOKEN_LIFETIME_SECONDS == 300
    assert "refresh_token" not in body
    assert plaintext not in response.text

    verified = verifier_for(live_server).verify(body["access_token"])
    claims = verified.claims
    assert claims["sub"] == f"api_key:{api_key.key_id}"
    assert claims["act"] == {"sub": gateway.client_id}
    assert verified.actor == gateway.client_id
    assert claims["client_id"] == gateway.client_id
    assert claims["org_id"] == "acme"  # the key's organisation, not the gateway's
    assert claims["scope"] == "orders:read orders:write"
    assert claims["aud"] == settings.PORTAL_DEFAULT_AUDIENCE
    assert started <= claims["iat"] and claims["exp"] - claims["iat"] == 300

    with requests.Session() as session:
        whoami = session.get(
            live_server.url + "/api/v1/whoami",
            headers={"Authorization": f"Bearer {body['access_token']}"},
            timeout=10,
        )
    assert whoami.status_code == 200, whoami.text
    me = whoami.json()
    assert me["credential_type"] == "access_token"
    assert me["organization"] == "acme"
    assert me["scopes"] == ["orders:read", "orders:write"]
    assert me["owner"] == api_key.owner.email
    assert me["api_key_id"] == api_key.key_id
    assert me["actor"] == gateway.client_id

    # A resource server of the key's organisation introspects it; so does the gateway itself.
    resource_server = make_app(name="Orders service")
    for caller in (resource_server, gateway):
        with requests.Session() as session:
            introspected = session.post(
                live_server.url + "/oauth/introspect",
                data={"token": body["access_token"]},
                headers={"Authorization": basic(caller.client_id, caller.client_secret)},
                timeout=10,
            ).json()
        assert introspected["active"] is True
        assert introspected["sub"] == claims["sub"] and introspected["act"] == claims["act"]
        assert introspected["org_id"] == "acme" and introspected["client_id"] == gateway.client_id

    # Revoking the key stops introspection and whoami at once; offline validation trusts the lifetime.
    api_key_revoke(api_key=api_key, actor=api_key.owner, reason="rotated out")
    with requests.Session() as session:
        introspected = session.post(
            live_server.url + "/oauth/introspect",
            data={"token": body["access_token"]},
            headers={"Authorization": basic(resource_server.client_id, resource_server.client_secret)},
            timeout=10,
        ).json()
        whoami = session.get(
            live_server.url + "/api/v1/whoami",
            headers={"Authorization": f"Bearer {body['access_token']}"},
            timeout=10,
        )
    assert introspected == {"active": False}
    assert whoami.status_code == 401
    assert verifier_for(live_server).verify(body["access_token"]).claims["sub"] == claims["sub"]
    # And the revoked key cannot be exchanged again.
    again = post_exchange(live_server.url, gateway, plaintext)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"


@pytest.mark.django_db(transaction=True)
def test_authlib_client_exchanges_with_a_narrower_scope_and_a_resource(live_server, gateway, customer_key):
    api_key, plaintext = customer_key
    with AuthlibSession(gateway.client_id, gateway.client_secret) as session:
        token = session.fetch_token(
            live_server.url + "/oauth/token",
            grant_type=GRANT_TYPE,
            subject_token=plaintext,
            subject_token_type=API_KEY_TOKEN_TYPE,
            requested_token_type=JWT_TOKEN_TYPE,
            scope="orders:read",
            resource=SERVICE_AUDIENCE,
        )
    assert token["issued_token_type"] == JWT_TOKEN_TYPE
    assert token["scope"] == "orders:read"
    verified = verifier_for(live_server, audience=SERVICE_AUDIENCE).verify(token["access_token"])
    assert verified.claims["aud"] == SERVICE_AUDIENCE
    assert verified.scopes == {"orders:read"}
    assert verified.organization == "acme"


@pytest.mark.django_db(transaction=True)
def test_generic_access_token_type_and_audience_parameter(live_server, gateway, customer_key):
    _api_key, plaintext = customer_key
    response = post_exchange(
        live_server.url, gateway, plaintext, subject_token_type=ACCESS_TOKEN_TYPE, audience=SERVICE_AUDIENCE
    )
    assert response.status_code == 200, response.text
    verified = verifier_for(live_server, audience=SERVICE_AUDIENCE).verify(response.json()["access_token"])
    assert verified.claims["sub"].startswith(SUBJECT_PREFIX)


def _world_for_rejections(gateway, customer_key, organization, owner, make_app):
    """Return every key a rejection case needs, by name."""
    api_key, plaintext = customer_key
    revoked, revoked_plain = api_key_create(
        organization=organization, name="revoked", owner=owner, scopes=["orders:read"], actor=owner
    )
    api_key_revoke(api_key=revoked, actor=owner, reason="test")
    suspended, suspended_plain = api_key_create(
        organization=organization, name="suspended", owner=owner, scopes=["orders:read"], actor=owner
    )
    credential_suspend(credential=suspended, actor=None, reason="manual")
    expired, expired_plain = api_key_create(
        organization=organization, name="expired", owner=owner, scopes=["orders:read"], actor=owner
    )
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    pending_key, _request = api_key_request(
        organization=organization,
        name="pending",
        owner=owner,
        scopes=["orders:read"],
        requester=owner,
        justification="test",
    )
    _, pending_plain = keys.generate(pending_key.environment, key_id=pending_key.key_id)
    _, unknown_plain = keys.generate("live")
    bad_checksum = plaintext[:-1] + ("0" if plaintext[-1] != "0" else "1")
    cache.clear()  # the expiry was changed behind the service's back
    return {
        "valid": plaintext,
        "revoked": revoked_plain,
        "suspended": suspended_plain,
        "expired": expired_plain,
        "pending": pending_plain,
        "unknown": unknown_plain,
        "bad_checksum": bad_checksum,
        "jwt": None,  # filled in by the test: an access token is not an API key
        "not_allowed": make_app(name="Not a gateway"),
    }


REJECTIONS = [
    # (case, subject key name, extra params, status, error)
    ("missing subject_token", None, {"subject_token": ""}, 400, "invalid_request"),
    ("missing subject_token_type", "valid", {"subject_token_type": ""}, 400, "invalid_request"),
    ("unsupported subject_token_type", "valid",
     {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, 400, "invalid_request"),
    ("bad checksum", "bad_checksum", {}, 400, "invalid_request"),
    ("unknown key", "unknown", {}, 400, "invalid_request"),
    ("revoked key", "revoked", {}, 400, "invalid_request"),
    ("suspended key", "suspended", {}, 400, "invalid_request"),
    ("expired key", "expired", {}, 400, "invalid_request"),
    ("pending key", "pending", {}, 400, "invalid_request"),
    ("a JWT as subject token", "jwt", {}, 400, "invalid_request"),
    ("scope wider than the key", "valid", {"scope": "orders:read billing:read"}, 400, "invalid_scope"),
    ("resource not allowed", "valid", {"resource": "https://evil.example.com"}, 400, "invalid_target"),
    ("audience not allowed", "valid", {"audience": "billing"}, 400, "invalid_target"),
    ("two targets", "valid",
     {"resource": SERVICE_AUDIENCE, "audience": settings.PORTAL_DEFAULT_AUDIENCE}, 400, "invalid_target"),
    ("actor_token given", "valid",
     {"actor_token": "x", "actor_token_type": ACCESS_TOKEN_TYPE}, 400, "invalid_request"),
    ("unsupported requested_token_type", "valid",
     {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, 400, "invalid_request"),
    ("repeated subject_token", "valid", {"subject_token": ["a", "b"]}, 400, "invalid_request"),
    ("gateway not allowed", "valid", {"_client": "not_allowed"}, 400, "unauthorized_client"),
    ("bad client authentication", "valid", {"_client": "wrong_secret"}, 401, "invalid_client"),
]  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "subject, params, status, error", [case[1:] for case in REJECTIONS], ids=[case[0] for case in REJECTIONS]
)
def test_every_rejection(
    live_server, caplog, gateway, customer_key, organization, owner, make_app, token_for,
    subject, params, status, error,
):  # fmt: skip
    caplog.set_level(logging.DEBUG)
    world = _world_for_rejections(gateway, customer_key, organization, owner, make_app)
    world["jwt"] = token_for(gateway)
    params = dict(params)
    client = params.pop("_client", None)
    creds, auth = gateway, None
    if client == "not_allowed":
        creds = world["not_allowed"]
    elif client == "wrong_secret":
        # One character off, and never the same one (a secret may end in "0" itself).
        last = "1" if gateway.client_secret.endswith("0") else "0"
        auth = basic(gateway.client_id, gateway.client_secret[:-1] + last)
    key = world[subject] if subject else ""
    response = post_exchange(live_server.url, creds, key, auth=auth, **params)
    assert response.status_code == status, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    # The key is never echoed, and an unusable key gets one generic description.
    for secret in [v for v in world.values() if isinstance(v, str) and v]:
        assert secret not in response.text
        assert secret not in caplog.text
    if subject not in ("valid", None) and error == "invalid_request":
        assert body["error_description"] == "The subject_token is not a usable API key."


# --- in-process: the hot path, the limits, the gateway switch, revocation ----------------------


def exchange(client, creds, key: str, **params):
    return client.post(
        "/oauth/token",
        exchange_form(key, **params),
        HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
    )


@pytest.mark.django_db
def test_exchange_parameters_sent_empty_count_as_omitted(client, gateway, customer_key):
    _api_key, plaintext = customer_key
    response = exchange(client, gateway, plaintext, scope="", resource="", audience="")
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert body["scope"] == "orders:read orders:write"
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == (
        settings.PORTAL_DEFAULT_AUDIENCE
    )


@pytest.mark.django_db
def test_a_successful_exchange_costs_few_queries(
    client, gateway, customer_key, django_assert_max_num_queries
):
    _api_key, plaintext = customer_key
    assert exchange(client, gateway, plaintext).status_code == 200  # warm: signing key loaded
    cache.clear()
    # Gateway + its secrets (client authentication), the key and the audience's catalogue entry
    # (cache misses), the key's last-used touch.
    with django_assert_max_num_queries(5):
        response = exchange(client, gateway, plaintext)
    assert response.status_code == 200, response.content
    # A second exchange within the cache lifetime does not look the key up again.
    with django_assert_max_num_queries(2):
        assert exchange(client, gateway, plaintext).status_code == 200


@pytest.mark.django_db
def test_key_last_used_is_touched_once_a_minute(client, gateway, customer_key):
    api_key, plaintext = customer_key
    assert exchange(client, gateway, plaintext).status_code == 200
    api_key.refresh_from_db()
    first = api_key.last_used_at
    assert first is not None
    assert exchange(client, gateway, plaintext).status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at == first


@pytest.mark.django_db
@pytest.mark.usefixtures("rate_clock")
def test_the_gateways_issuance_limit_applies(client, settings, gateway, customer_key):
    settings.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 2
    _api_key, plaintext = customer_key
    assert [exchange(client, gateway, plaintext).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.django_db
def test_lifetime_is_the_shorter_of_the_setting_the_gateway_and_the_key(
    client, settings, gateway, organization, owner, scopes
):
    settings.PORTAL_EXCHANGE_TOKEN_LIFETIME_SECONDS = 3600
    _key, plaintext = api_key_create(
        organization=organization, name="long", owner=owner, scopes=["orders:read"], actor=owner
    )
    assert json.loads(exchange(client, gateway, plaintext).content)["expires_in"] == 900  # the gateway's
    _key, soon = api_key_create(
        organization=organization,
        name="soon",
        owner=owner,
        scopes=["orders:read"],
        actor=owner,
        expires_at=timezone.now() + timedelta(seconds=120),
    )
    assert json.loads(exchange(client, gateway, soon).content)["expires_in"] <= 120  # never outlives the key


@pytest.mark.django_db
def test_disallowing_the_gateway_deactivates_its_exchanged_tokens(client, gateway, customer_key, make_app):
    _api_key, plaintext = customer_key
    token = json.loads(exchange(client, gateway, plaintext).content)["access_token"]
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    m2m_app_set_exchange(application=gateway.application, allowed=False, actor=None)
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    response = exchange(client, gateway, plaintext)
    assert response.status_code == 400 and json.loads(response.content)["error"] == "unauthorized_client"


@pytest.mark.django_db
def test_suspending_the_key_stops_its_exchanged_tokens_at_once(client, gateway, customer_key, make_app):
    api_key, plaintext = customer_key
    token = json.loads(exchange(client, gateway, plaintext).content)["access_token"]
    resource_server = make_app(name="Orders service")
    auth = basic(resource_server.client_id, resource_server.client_secret)
    assert json.loads(client.post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=auth).content)[
        "active"
    ]
    credential_suspend(
        credential=api_key, actor=None, reason="manual"
    )  # no cache.clear(): the service drops it
    assert json.loads(
        client.post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=auth).content
    ) == {"active": False}
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


@pytest.mark.django_db
def test_gateway_revokes_an_exchanged_token_by_jti(client, gateway, customer_key):
    _api_key, plaintext = customer_key
    token = json.loads(exchange(client, gateway, plaintext).content)["access_token"]
    auth = basic(gateway.client_id, gateway.client_secret)
    assert client.post("/oauth/revoke", {"token": token}, HTTP_AUTHORIZATION=auth).status_code == 200
    assert json.loads(
        client.post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=auth).content
    ) == {"active": False}
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


@pytest.mark.django_db
def test_another_organisations_app_sees_the_exchanged_token_inactive(
    client, gateway, customer_key, make_app, other_organization, outsider
):
    _api_key, plaintext = customer_key
    token = json.loads(exchange(client, gateway, plaintext).content)["access_token"]
    # Same organisation as the gateway, but not the key's, and not the gateway itself.
    bystander = make_app(organization=other_organization, app_owner=outsider, name="Globex worker")
    response = client.post(
        "/oauth/introspect",
        {"token": token},
        HTTP_AUTHORIZATION=basic(bystander.client_id, bystander.client_secret),
    )
    assert json.loads(response.content) == {"active": False}


@pytest.mark.django_db
def test_forged_exchanged_claims_without_a_gateway_right_are_refused(client, app, customer_key):
    """A token naming a key but minted for an app that may not exchange is not honoured."""
    from tokens.signing.issuing import access_token_claims, sign_access_token

    api_key, _plaintext = customer_key
    claims = access_token_claims(
        application=app.application,
        scopes=["orders:read"],
        audience=settings.PORTAL_DEFAULT_AUDIENCE,
        lifetime=300,
        secret_id=app.application.secrets.get().public_id,
        subject=SUBJECT_PREFIX + api_key.key_id,
        organization_slug="acme",
    )
    claims["act"] = {"sub": app.client_id}
    token = sign_access_token(claims)
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


@pytest.mark.django_db
def test_metadata_lists_the_grant_and_the_token_types(client):
    body = json.loads(client.get("/.well-known/oauth-authorization-server").content)
    assert GRANT_TYPE in body["grant_types_supported"]
    assert body["token_exchange_subject_token_types_supported"] == [API_KEY_TOKEN_TYPE, ACCESS_TOKEN_TYPE]
    assert API_KEY_TOKEN_TYPE == "urn:identity-portal:params:oauth:token-type:api-key"


@pytest.mark.django_db
@pytest.mark.parametrize("environment", ["live", "test"])
def test_an_exchanged_token_carries_the_keys_environment(
    client, gateway, organization, owner, scopes, make_app, environment
):
    """Issue 14, item 9: a test key's token is told apart from a live key's, in the JWT and at whoami."""
    _key, plaintext = api_key_create(
        organization=organization,
        name="env",
        owner=owner,
        scopes=["orders:read"],
        actor=owner,
        environment=environment,
    )
    assert plaintext.startswith(f"ipk_{environment}_")
    response = exchange(client, gateway, plaintext)
    assert response.status_code == 200, response.content
    token = json.loads(response.content)["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})  # the claim itself, as issued
    assert claims["environment"] == environment

    # whoami stays a superset of the pinned fields and names the environment, for the token ...
    me = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert me["credential_type"] == "access_token" and me["organization"] == "acme"
    assert me["scopes"] == ["orders:read"] and me["owner"] == owner.email
    assert me["environment"] == environment
    # ... and for the key itself.
    me = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {plaintext}").json()
    assert me["credential_type"] == "api_key" and me["environment"] == environment

    # Introspection by a resource server of the key's organisation shows it too.
    resource_server = make_app(name="Orders service")
    introspected = client.post(
        "/oauth/introspect",
        {"token": token},
        HTTP_AUTHORIZATION=basic(resource_server.client_id, resource_server.client_secret),
    ).json()
    assert introspected["active"] is True and introspected["environment"] == environment


@pytest.mark.django_db
def test_an_m2m_token_has_no_environment(client, make_app):
    creds = make_app()
    token = client.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
    ).json()["access_token"]
    assert "environment" not in jwt.decode(token, options={"verify_signature": False})
    me = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert me["credential_type"] == "access_token" and "environment" not in me


def test_the_openapi_description_of_whoami_names_the_environment(client):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    schemas = schema.json()["components"]["schemas"]
    whoami = schemas["WhoAmI"]
    environment = whoami["properties"]["environment"]
    ref = environment.get("$ref") or environment.get("allOf", [{}])[0].get("$ref", "")
    enum = environment.get("enum") or schemas[ref.rsplit("/", 1)[-1]]["enum"]
    assert enum == ["live", "test"]
    assert {"credential_type", "organization", "scopes", "owner"} <= set(whoami["required"])
    assert "environment" not in whoami["required"]


def test_errors_do_not_echo_a_state_parameter(client, gateway):
    response = client.post(
        "/oauth/token",
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": "not-a-key",
            "subject_token_type": "urn:identity-portal:params:oauth:token-type:api-key",
            "state": "reflected",
        },
        HTTP_AUTHORIZATION=basic(gateway.client_id, gateway.client_secret),
    )
    assert response.status_code == 400
    assert json.loads(response.content) == {"error": "invalid_request", "error_description": ANY}
