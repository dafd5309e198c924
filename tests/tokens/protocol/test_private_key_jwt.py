"""private_key_jwt client authentication (RFC 7523 §2.2, §3): every acceptance and every refusal."""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils import timezone

from portal.models import AuditEvent
from tests.support.pem import public_pem
from tests.tokens.conftest import basic
from tokens.clients.public_keys import parse_public_key
from tokens.clients.services import (
    client_public_key_add,
    client_public_key_revoke,
    client_secret_rotate,
    m2m_app_create,
)
from tokens.models import ClientPublicKey
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE, REPLAY_CACHE_PREFIX
from tokens.protocol.selectors import live_access_token

TOKEN_URL = settings.PORTAL_ISSUER + "/oauth/token"


@pytest.fixture(scope="module")
def other_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_assertion(private_key, client_id: str, *, alg: str = "RS256", headers=None, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, private_key, algorithm=alg, headers=headers)


def post_token(client, assertion: str, **params):
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": assertion,
        **params,
    }
    return client.post("/oauth/token", {k: v for k, v in data.items() if v is not None})


def assert_invalid_client(response):
    assert response.status_code == 401, response.content
    assert json.loads(response.content) == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    }


# --- success ----------------------------------------------------------------------------------


def test_a_signed_assertion_gets_a_token_naming_the_key(client, pk_app, rsa_key):
    response = post_token(client, make_assertion(rsa_key, pk_app.client_id))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    token = json.loads(response.content)["access_token"]
    claims = live_access_token(token, audience=settings.PORTAL_DEFAULT_AUDIENCE).claims
    key = pk_app.public_keys.get()
    assert claims["client_id"] == claims["sub"] == pk_app.client_id
    assert claims["ckid"] == key.kid and "csid" not in claims
    assert claims["scope"] == "orders:read"


@pytest.mark.parametrize(
    "aud",
    [
        settings.PORTAL_ISSUER,
        TOKEN_URL,
        [TOKEN_URL, "https://elsewhere.example"],
    ],
)
def test_aud_may_be_the_issuer_or_the_token_endpoint_string_or_list(client, pk_app, rsa_key, aud):
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id, aud=aud)).status_code == 200


def test_a_matching_client_id_parameter_is_accepted(client, pk_app, rsa_key):
    response = post_token(client, make_assertion(rsa_key, pk_app.client_id), client_id=pk_app.client_id)
    assert response.status_code == 200


def test_the_kid_header_may_name_the_thumbprint_or_anything(client, pk_app, rsa_key):
    kid = pk_app.public_keys.get().kid
    assert (
        post_token(client, make_assertion(rsa_key, pk_app.client_id, headers={"kid": kid})).status_code == 200
    )
    assert (
        post_token(client, make_assertion(rsa_key, pk_app.client_id, headers={"kid": "mine"})).status_code
        == 200
    )


def test_an_assertion_without_iat_needs_a_short_exp(client, pk_app, rsa_key):
    now = int(time.time())
    ok = make_assertion(rsa_key, pk_app.client_id, iat=None, exp=now + 120)
    assert post_token(client, ok).status_code == 200
    too_long = make_assertion(rsa_key, pk_app.client_id, iat=None, exp=now + 1800)
    assert_invalid_client(post_token(client, too_long))


@pytest.mark.parametrize(
    ("make_key", "alg"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "PS256"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    ],
)
def test_each_allowed_algorithm_works(client, organization, owner, scopes, make_key, alg):
    private_key = make_key()
    application, _ = m2m_app_create(
        organization=organization,
        name=f"{alg} service",
        owner=owner,
        actor=owner,
        auth_method="private_key_jwt",
    )
    client_public_key_add(
        application=application, jwk_or_pem=public_pem(private_key), actor=owner, algorithm=alg
    )
    assert application.public_keys.get().algorithm == alg
    response = post_token(client, make_assertion(private_key, application.client_id, alg=alg))
    assert response.status_code == 200, response.content


def test_introspect_and_revoke_accept_an_assertion(client, pk_app, rsa_key):
    token = json.loads(post_token(client, make_assertion(rsa_key, pk_app.client_id)).content)["access_token"]
    introspect_aud = settings.PORTAL_ISSUER + "/oauth/introspect"
    response = client.post(
        "/oauth/introspect",
        {
            "token": token,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": make_assertion(rsa_key, pk_app.client_id, aud=introspect_aud),
        },
    )
    assert response.status_code == 200 and json.loads(response.content)["active"] is True
    response = client.post(
        "/oauth/revoke",
        {
            "token": token,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": make_assertion(rsa_key, pk_app.client_id),
        },
    )
    assert response.status_code == 200
    response = client.post(
        "/oauth/introspect",
        {
            "token": token,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": make_assertion(rsa_key, pk_app.client_id),
        },
    )
    assert json.loads(response.content) == {"active": False}


def test_introspect_refuses_a_replayed_assertion(client, pk_app, rsa_key):
    assertion = make_assertion(rsa_key, pk_app.client_id)
    data = {"token": "x", "client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": assertion}
    assert client.post("/oauth/introspect", data).status_code == 200
    assert_invalid_client(client.post("/oauth/introspect", data))


@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
@pytest.mark.parametrize("repeated", ["client_assertion", "client_assertion_type"])
def test_a_repeated_assertion_parameter_is_invalid_request_and_spends_nothing(
    client, pk_app, rsa_key, other_rsa_key, endpoint, repeated
):
    assertion = make_assertion(rsa_key, pk_app.client_id)
    data = {
        "grant_type": "client_credentials",
        "token": "x",
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    # Which of two values counts would be up to the parser: RFC 6749 §3.2 refuses the request.
    response = client.post(endpoint, {**data, repeated: [data[repeated], make_assertion(other_rsa_key, "x")]})
    assert response.status_code == 400, response.content
    assert json.loads(response.content)["error"] == "invalid_request"
    assert response["Cache-Control"] == "no-store"
    assert client.post(endpoint, data).status_code == 200  # the assertion was not spent


# --- every refusal ----------------------------------------------------------------------------


def test_wrong_aud_is_refused(client, pk_app, rsa_key):
    for aud in ("https://other.example/oauth/token", settings.PORTAL_DEFAULT_AUDIENCE, ["https://x.example"]):
        assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id, aud=aud)))


def test_missing_aud_is_refused(client, pk_app, rsa_key):
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id, aud=None)))


def test_expired_assertion_is_refused(client, pk_app, rsa_key):
    now = int(time.time())
    expired = make_assertion(rsa_key, pk_app.client_id, iat=now - 200, exp=now - 60)
    assert_invalid_client(post_token(client, expired))


def test_exp_too_far_in_the_future_is_refused(client, pk_app, rsa_key):
    now = int(time.time())
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id, exp=now + 2 * 3600)))


def test_an_old_assertion_is_refused_even_before_its_exp(client, pk_app, rsa_key):
    now = int(time.time())
    stale = make_assertion(rsa_key, pk_app.client_id, iat=now - 600, exp=now + 600)
    assert_invalid_client(post_token(client, stale))


def test_missing_exp_is_refused(client, pk_app, rsa_key):
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id, exp=None)))


def test_nbf_in_the_future_is_refused(client, pk_app, rsa_key):
    now = int(time.time())
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id, nbf=now + 120)))


def test_a_replayed_jti_is_refused(client, pk_app, rsa_key):
    assertion = make_assertion(rsa_key, pk_app.client_id)
    assert post_token(client, assertion).status_code == 200
    assert_invalid_client(post_token(client, assertion))
    # A new assertion reusing the jti is a replay too.
    jti = jwt.decode(assertion, options={"verify_signature": False})["jti"]
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id, jti=jti)))


def test_the_replay_cache_entry_lives_as_long_as_the_assertion_could(client, pk_app, rsa_key, monkeypatch):
    calls = []
    original = cache.add

    def spy(key, value, timeout=None, **kwargs):
        if key.startswith(REPLAY_CACHE_PREFIX):
            calls.append(timeout)
        return original(key, value, timeout=timeout, **kwargs)

    monkeypatch.setattr(cache, "add", spy)
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200
    # exp is 60 s ahead, plus the 30 s leeway.
    assert len(calls) == 1 and 85 <= calls[0] <= 91


@pytest.mark.parametrize(
    ("iat", "exp", "acceptable_for"),
    [
        (0, 3600, 330),  # authlib: exp an hour ahead, but accepted only 5 minutes after iat (+ leeway)
        (-200, 3600, 130),  # signed 200 s ago: 100 s left, plus the leeway
        (None, 120, 150),  # no iat: until exp, plus the leeway
        (-10, 60, 90),
    ],
    ids=["authlib-hour", "signed-earlier", "no-iat", "short-exp"],
)
def test_the_replay_entry_covers_exactly_the_window_in_which_the_assertion_is_accepted(
    client, pk_app, rsa_key, monkeypatch, iat, exp, acceptable_for
):
    timeouts = []
    original = cache.add

    def spy(key, value, timeout=None, **kwargs):
        if key.startswith(REPLAY_CACHE_PREFIX):
            timeouts.append(timeout)
        return original(key, value, timeout=timeout, **kwargs)

    monkeypatch.setattr(cache, "add", spy)
    now = int(time.time())
    claims = {"iat": None if iat is None else now + iat, "exp": now + exp}
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id, **claims)).status_code == 200
    assert len(timeouts) == 1 and acceptable_for - 2 <= timeouts[0] <= acceptable_for + 1

    def presented_later(seconds: int) -> str:
        """Return a fresh assertion with the same times as the first one, seen `seconds` later."""
        shifted = {name: value - seconds for name, value in claims.items() if value is not None}
        return make_assertion(rsa_key, pk_app.client_id, **{**claims, **shifted})

    # That window is the assertion's whole life: just before its end it still passes every
    # other check (so the entry must still be there), just after it fails on its times alone.
    assert post_token(client, presented_later(acceptable_for - 5)).status_code == 200
    assert_invalid_client(post_token(client, presented_later(acceptable_for + 5)))


def test_an_unavailable_replay_cache_refuses(client, pk_app, rsa_key, monkeypatch):
    # ResilientRedisCache.add answers False while Redis is down: that must fail closed.
    monkeypatch.setattr(cache, "add", lambda *args, **kwargs: False)
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id)))


def test_missing_jti_is_refused(client, pk_app, rsa_key):
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id, jti=None)))


def test_an_unregistered_key_is_refused(client, pk_app, other_rsa_key):
    assert_invalid_client(post_token(client, make_assertion(other_rsa_key, pk_app.client_id)))


def test_a_revoked_key_is_refused_at_once_and_its_tokens_stop(client, pk_app, rsa_key, owner):
    token = json.loads(post_token(client, make_assertion(rsa_key, pk_app.client_id)).content)["access_token"]
    client_public_key_revoke(public_key=pk_app.public_keys.get(), actor=owner)
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id)))
    whoami = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert whoami.status_code == 401


def test_an_expired_key_is_refused(client, pk_app, rsa_key):
    pk_app.public_keys.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id)))


def test_alg_none_is_refused(client, pk_app):
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    now = int(time.time())
    body = {"iss": pk_app.client_id, "sub": pk_app.client_id, "aud": TOKEN_URL, "exp": now + 60, "jti": "n1"}
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    assert_invalid_client(post_token(client, f"{header}.{payload}."))


def test_hs256_signed_with_the_public_key_is_refused(client, pk_app, rsa_key):
    # The classic key-confusion attack: use the (public) PEM or JWK bytes as an HMAC secret.
    import hashlib
    import hmac

    key = pk_app.public_keys.get()
    for secret in (public_pem(rsa_key).encode(), json.dumps(key.public_jwk).encode()):
        now = int(time.time())
        body = {
            "iss": pk_app.client_id,
            "sub": pk_app.client_id,
            "aud": TOKEN_URL,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(8),
        }
        segments = [
            base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode()),
            base64.urlsafe_b64encode(json.dumps(body).encode()),
        ]
        signing_input = b".".join(s.rstrip(b"=") for s in segments)
        signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(
            b"="
        )
        assert_invalid_client(post_token(client, (signing_input + b"." + signature).decode()))


def test_a_key_algorithm_other_than_the_registered_one_is_refused(client, pk_app, rsa_key):
    # Registered for RS256: a PS256 signature by the same key is refused.
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id, alg="PS256")))


def test_iss_different_from_sub_is_refused(client, pk_app, rsa_key):
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id, iss="someone-else")))


def test_sub_not_a_client_is_refused(client, pk_app, rsa_key):
    assert_invalid_client(post_token(client, make_assertion(rsa_key, "m2m_nobody", iss="m2m_nobody")))


def test_a_different_client_id_parameter_is_refused(client, pk_app, rsa_key, make_app):
    other = make_app(name="Other")
    response = post_token(client, make_assertion(rsa_key, pk_app.client_id), client_id=other.client_id)
    assert_invalid_client(response)


def test_a_wrong_assertion_type_is_refused(client, pk_app, rsa_key):
    response = post_token(
        client,
        make_assertion(rsa_key, pk_app.client_id),
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    )
    assert_invalid_client(response)


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c", "eyJ" * 4000])
def test_garbage_assertions_are_refused_not_500(client, pk_app, garbage):
    assert_invalid_client(post_token(client, garbage))


def test_secret_and_assertion_together_are_invalid_request(client, pk_app, rsa_key, app):
    # RFC 6749 §5.2: more than one client authentication mechanism is invalid_request.
    assertion = make_assertion(rsa_key, pk_app.client_id)
    response = client.post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 400, response.content
    assert json.loads(response.content)["error"] == "invalid_request"
    response = post_token(client, make_assertion(rsa_key, pk_app.client_id), client_secret=app.client_secret)
    assert response.status_code == 400, response.content
    assert json.loads(response.content)["error"] == "invalid_request"


def test_secret_auth_is_refused_for_a_private_key_jwt_app(client, pk_app):
    # Even a made-up secret row could not help: the application is not a secret client.
    from tokens.clients.services import _new_secret

    _row, plaintext = _new_secret(pk_app, None)
    response = client.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(pk_app.client_id, plaintext),
    )
    assert_invalid_client(response)


def test_an_assertion_is_refused_for_a_secret_app(client, app, rsa_key):
    assert_invalid_client(post_token(client, make_assertion(rsa_key, app.client_id)))


def test_a_suspended_or_revoked_app_is_refused(client, pk_app, rsa_key, owner):
    from tokens.clients.services import m2m_app_revoke

    m2m_app_revoke(application=pk_app, actor=owner)
    assert pk_app.public_keys.get().revoked_at is not None
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id)))


def test_failures_log_a_reason_without_the_assertion(client, pk_app, rsa_key, caplog):
    assertion = make_assertion(rsa_key, pk_app.client_id, aud="https://other.example")
    with caplog.at_level("INFO", logger="tokens.protocol.assertions"):
        assert_invalid_client(post_token(client, assertion))
    assert "InvalidAudienceError" in caplog.text and pk_app.client_id in caplog.text
    assert assertion not in caplog.text and assertion.split(".")[2] not in caplog.text


# --- keys: registration, limits, rotation -------------------------------------------------------


def test_the_kid_is_the_rfc7638_thumbprint_and_only_public_members_are_stored(pk_app, rsa_key):
    key = pk_app.public_keys.get()
    from jwt.algorithms import RSAAlgorithm

    jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    import hashlib

    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert key.kid == expected
    assert set(key.public_jwk) == {"kty", "n", "e", "kid", "alg", "use"}


def test_a_jwk_and_a_pem_of_the_same_key_give_the_same_kid(rsa_key):
    from jwt.algorithms import RSAAlgorithm

    from_jwk = parse_public_key(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    assert from_jwk == parse_public_key(public_pem(rsa_key))


@pytest.mark.parametrize(
    "text",
    [
        "private-pem",
        "private-jwk",
        '{"kty":"oct","k":"c2VjcmV0"}',
        "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----",
        "ssh-rsa AAAA",
        "{not json",
        "small-rsa",
        "p521",
    ],
)
def test_unusable_or_private_key_material_is_refused_with_a_clear_message(rsa_key, text):
    from jwt.algorithms import RSAAlgorithm

    if text == "private-pem":
        text = rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    elif text == "private-jwk":
        text = RSAAlgorithm.to_jwk(rsa_key)
    elif text == "small-rsa":
        text = public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    elif text == "p521":
        text = public_pem(ec.generate_private_key(ec.SECP521R1()))
    with pytest.raises(ValidationError) as excinfo:
        parse_public_key(text)
    assert "public_key" in excinfo.value.message_dict


def test_private_material_error_says_what_to_do(rsa_key):
    from jwt.algorithms import RSAAlgorithm

    with pytest.raises(ValidationError) as excinfo:
        parse_public_key(RSAAlgorithm.to_jwk(rsa_key))
    assert "private key" in excinfo.value.message_dict["public_key"][0]


def test_an_algorithm_that_does_not_fit_the_key_is_refused(rsa_key):
    with pytest.raises(ValidationError):
        parse_public_key(public_pem(rsa_key), "ES256")


def test_a_third_live_key_is_refused(pk_app, owner, other_rsa_key):
    client_public_key_add(application=pk_app, jwk_or_pem=public_pem(other_rsa_key), actor=owner)
    third = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ValidationError, match="2 live keys"):
        client_public_key_add(application=pk_app, jwk_or_pem=public_pem(third), actor=owner)
    # Once one is revoked, there is room again.
    client_public_key_revoke(public_key=pk_app.public_keys.order_by("created_at").first(), actor=owner)
    client_public_key_add(application=pk_app, jwk_or_pem=public_pem(third), actor=owner)


def test_the_same_key_cannot_be_registered_twice_even_after_revocation(pk_app, owner, rsa_key):
    with pytest.raises(ValidationError, match="already registered"):
        client_public_key_add(application=pk_app, jwk_or_pem=public_pem(rsa_key), actor=owner)
    client_public_key_revoke(public_key=pk_app.public_keys.get(), actor=owner)
    with pytest.raises(ValidationError, match="already registered"):
        client_public_key_add(application=pk_app, jwk_or_pem=public_pem(rsa_key), actor=owner)


def test_rotation_with_overlap_keeps_both_keys_working_then_only_the_new_one(
    client, pk_app, owner, rsa_key, other_rsa_key
):
    client_public_key_add(
        application=pk_app, jwk_or_pem=public_pem(other_rsa_key), actor=owner, overlap=timedelta(hours=1)
    )
    old = pk_app.public_keys.get(kid=parse_public_key(public_pem(rsa_key))["kid"])
    assert old.expires_at is not None and old.state == "expiring"
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200
    assert post_token(client, make_assertion(other_rsa_key, pk_app.client_id)).status_code == 200
    ClientPublicKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_invalid_client(post_token(client, make_assertion(rsa_key, pk_app.client_id)))
    assert post_token(client, make_assertion(other_rsa_key, pk_app.client_id)).status_code == 200


def test_key_changes_are_audited_with_kid_and_alg_only(pk_app, owner, other_rsa_key):
    key = client_public_key_add(application=pk_app, jwk_or_pem=public_pem(other_rsa_key), actor=owner)
    client_public_key_revoke(public_key=key, actor=owner)
    added = AuditEvent.objects.get(action="tokens.m2m_app.public_key_added")
    revoked = AuditEvent.objects.get(action="tokens.m2m_app.public_key_revoked")
    assert added.extra["kid"] == revoked.extra["kid"] == key.kid
    assert added.extra["alg"] == "RS256"
    assert key.public_jwk["n"] not in json.dumps(added.extra) + json.dumps(revoked.extra)
    created = AuditEvent.objects.get(action="tokens.m2m_app.created", target_id=str(pk_app.pk))
    assert created.extra["auth_method"] == "private_key_jwt" and "secret_hint" not in created.extra


def test_secret_services_refuse_a_private_key_jwt_app_and_vice_versa(pk_app, app, owner, rsa_key):
    with pytest.raises(ValidationError):
        client_secret_rotate(application=pk_app, actor=owner)
    with pytest.raises(ValidationError):
        client_public_key_add(application=app.application, jwk_or_pem=public_pem(rsa_key), actor=owner)
    assert not pk_app.secrets.exists()


def test_last_used_is_written_at_most_once_a_minute(client, pk_app, rsa_key):
    key = pk_app.public_keys.get()
    assert key.last_used_at is None
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at == first
    ClientPublicKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(minutes=2))
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at > first - timedelta(minutes=1)


def test_a_refused_token_request_is_not_a_use_of_the_key(client, pk_app, rsa_key):
    # "Last used" is the last successful use, as for a client secret: an authenticated request
    # refused for its scopes does not make a key look in use.
    refused = post_token(client, make_assertion(rsa_key, pk_app.client_id), scope="orders:write")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    assert pk_app.public_keys.get().last_used_at is None
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200
    assert pk_app.public_keys.get().last_used_at is not None


def test_a_token_request_costs_few_queries(client, pk_app, rsa_key, django_assert_max_num_queries):
    # Warm up (signing key, scope catalogue), and let last_used_at be written once.
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200
    # One query for the application's live keys, one for its scopes, and on a slow machine one
    # for the resource-server catalogue entry, whose per-process snapshot lives only 1 s.
    with django_assert_max_num_queries(3):
        assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200


# --- governance: a pending application holds no key until approved ------------------------------


def test_a_requested_app_gets_its_first_key_after_approval_from_its_owner(
    organization, owner, admin_user, member, scopes, rsa_key, client
):
    from credentials.governance.approvals import credential_request_approve
    from tokens.clients.services import m2m_app_request

    application, request = m2m_app_request(
        organization=organization,
        name="Requested",
        owner=member,
        requester=member,
        justification="needed",
        auth_method="private_key_jwt",
    )
    with pytest.raises(ValidationError, match="waiting for approval"):
        client_public_key_add(application=application, jwk_or_pem=public_pem(rsa_key), actor=member)
    credential_request_approve(request=request, actor=admin_user)
    with pytest.raises(ValidationError, match="owner"):
        client_public_key_add(application=application, jwk_or_pem=public_pem(rsa_key), actor=admin_user)
    client_public_key_add(application=application, jwk_or_pem=public_pem(rsa_key), actor=member)
    application.refresh_from_db()
    assert application.status == "active" and application.review_due_at is not None
    event = AuditEvent.objects.get(action="tokens.m2m_app.public_key_added")
    assert event.extra["activated"] is True and event.extra["request_id"] == request.pk
    assert post_token(client, make_assertion(rsa_key, application.client_id)).status_code == 200


def test_generating_a_secret_is_refused_for_an_approved_private_key_jwt_app(
    organization, admin_user, member, scopes
):
    from credentials.governance.approvals import credential_request_approve, credential_secret_issue
    from tokens.clients.services import m2m_app_request

    application, request = m2m_app_request(
        organization=organization,
        name="Requested",
        owner=member,
        requester=member,
        justification="needed",
        auth_method="private_key_jwt",
    )
    credential_request_approve(request=request, actor=admin_user)
    with pytest.raises(ValidationError, match="public key"):
        credential_secret_issue(credential=application, actor=member)
    application.refresh_from_db()
    assert application.status == "pending" and not application.secrets.exists()


# --- PostgreSQL: concurrent additions ------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_additions_never_exceed_two_live_keys(require_postgres, organization, owner, scopes):
    import threading

    from django.db import connection

    application, _none = m2m_app_create(
        organization=organization, name="Raced", owner=owner, actor=owner, auth_method="private_key_jwt"
    )
    pems = [public_pem(ec.generate_private_key(ec.SECP256R1())) for _ in range(4)]
    barrier = threading.Barrier(len(pems))
    refused = []

    def add(pem):
        try:
            barrier.wait()
            client_public_key_add(application=application, jwk_or_pem=pem, actor=owner)
        except ValidationError as exc:
            refused.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=add, args=(pem,)) for pem in pems]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert application.public_keys.count() == 2
    assert len(refused) == 2 and all("2 live keys" in str(exc) for exc in refused)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_one_assertion_succeed_once(require_postgres, pk_app, rsa_key):
    import threading

    from django.db import connection
    from django.test import Client

    assertion = make_assertion(rsa_key, pk_app.client_id)
    barrier = threading.Barrier(4)
    statuses = []

    def post():
        try:
            barrier.wait()
            statuses.append(post_token(Client(), assertion).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 401, 401, 401]


def test_the_inventory_reads_expiry_and_last_use_from_the_keys(client, pk_app, rsa_key, owner, other_rsa_key):
    from tokens.clients.selectors import m2m_apps_inventory

    row = m2m_apps_inventory(pk_app.organization).get(pk=pk_app.pk)
    assert row.row_expires is None and row.row_last_used is None
    assert post_token(client, make_assertion(rsa_key, pk_app.client_id)).status_code == 200
    stop_at = timezone.now() + timedelta(days=3)
    client_public_key_add(
        application=pk_app, jwk_or_pem=public_pem(other_rsa_key), actor=owner, expires_at=stop_at
    )
    pk_app.public_keys.exclude(expires_at=stop_at).update(expires_at=timezone.now() + timedelta(days=1))
    row = m2m_apps_inventory(pk_app.organization).get(pk=pk_app.pk)
    # The application lasts as long as its longest-lived key, and was last used when a key was.
    assert row.row_expires == stop_at
    assert row.row_last_used == pk_app.public_keys.exclude(last_used_at=None).get().last_used_at


def test_the_approval_email_tells_the_owner_to_register_a_key(
    organization, admin_user, member, scopes, mailoutbox, django_capture_on_commit_callbacks
):
    from credentials.governance.approvals import credential_request_approve
    from tokens.clients.services import m2m_app_request

    _application, request = m2m_app_request(
        organization=organization,
        name="Requested",
        owner=member,
        requester=member,
        justification="needed",
        auth_method="private_key_jwt",
    )
    with django_capture_on_commit_callbacks(execute=True):
        credential_request_approve(request=request, actor=admin_user)
    approved = [m for m in mailoutbox if "approved" in m.body]
    assert approved and "register its public key" in approved[-1].body
    assert "generate the secret" not in approved[-1].body
