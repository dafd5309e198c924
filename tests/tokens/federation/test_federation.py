"""Workload identity federation at /oauth/token, against a real local OIDC issuer (tests/support)."""

from __future__ import annotations

import base64
import json
import socket
import time
from io import StringIO

import jwt
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from portal.models import AuditEvent
from tests.factories import UserFactory, enrol_totp
from tests.support.oidc_issuer import LocalIssuer
from tests.support.servers import free_port
from tokens.federation import trust as federation
from tokens.federation.services import federated_identity_create, federated_identity_revoke
from tokens.models import FederatedIdentity
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE
from tokens.protocol.selectors import live_access_token
from tokens.signing.issuing import access_token_claims, sign_access_token

pytestmark = pytest.mark.usefixtures("local_issuers")

AUD = settings.PORTAL_ISSUER


def add_trust(application, issuer_url, subject, *, actor=None, **kwargs) -> FederatedIdentity:
    identity, _request = federated_identity_create(
        application=application, actor=actor, issuer=issuer_url, subject=subject, **kwargs
    )
    return identity


def request_trust(application, requester):
    """Ask for a trust under an approval policy (the caller sets it); return `(trust, request)`."""
    identity, request = federated_identity_create(
        application=application,
        actor=requester,
        issuer="https://ci.example.com",
        subject="repo:acme/deploy:ref:refs/heads/main",
        preset="custom",
        justification="deploys",
    )
    assert identity.status == FederatedIdentity.Status.PENDING and request is not None
    return identity, request


def present(client, client_id: str, token: str, **extra):
    data = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": token,
        **extra,
    }
    return client.post("/oauth/token", data)


def assert_invalid_client(response, token: str | None = None):
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["error"] == "invalid_client"
    assert response["Cache-Control"] == "no-store"
    if token:
        for part in token.split("."):
            assert part[:40] not in response.content.decode()


def claims_of(response) -> dict:
    assert response.status_code == 200, response.content
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


# --- the pinned command and the happy path ----------------------------------------------------


def test_the_command_prints_json_and_a_github_actions_token_gets_a_portal_token(client, app, issuer):
    out = StringIO()
    call_command(
        "add_federated_identity",
        "--client-id",
        app.client_id,
        "--issuer",
        issuer.url,
        "--subject",
        "repo:acme/api:ref:refs/heads/main",
        "--condition",
        "repository=acme/api",
        "--condition",
        "ref=refs/heads/main",
        "--max-token-age",
        "600",
        "--json",
        stdout=out,
    )
    printed = json.loads(out.getvalue())
    assert printed["id"].startswith("fid_") and printed["status"] == "active"
    assert printed["conditions"] == {"ref": ["refs/heads/main"], "repository": ["acme/api"]}
    assert printed["audience"] == AUD and printed["max_token_age"] == 600

    external = issuer.github_actions(audience=AUD)
    response = present(client, app.client_id, external)
    claims = claims_of(response)
    assert claims["sub"] == app.client_id and claims["client_id"] == app.client_id
    assert claims["fed"] == {
        "id": printed["id"],
        "iss": issuer.url,
        "sub": "repo:acme/api:ref:refs/heads/main",
    }
    assert "csid" not in claims and "ckid" not in claims
    assert set(claims["scope"].split()) == {"orders:read", "orders:write"}
    assert live_access_token(response.json()["access_token"], audience=None).claims["jti"] == claims["jti"]
    identity = FederatedIdentity.objects.get(public_id=printed["id"])
    assert identity.last_used_at is not None
    assert AuditEvent.objects.filter(action="tokens.federated_identity.created").count() == 1


def test_the_command_refuses_bad_input_with_a_message(app, issuer):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No application"):
        call_command(
            "add_federated_identity", "--client-id", "m2m_nope", "--issuer", issuer.url, "--subject", "x"
        )
    with pytest.raises(CommandError, match="Wildcards"):
        call_command(
            "add_federated_identity",
            "--client-id",
            app.client_id,
            "--issuer",
            "https://*.example",
            "--subject",
            "x",
        )
    with pytest.raises(CommandError, match="NAME=VALUE"):
        call_command(
            "add_federated_identity",
            "--client-id",
            app.client_id,
            "--issuer",
            issuer.url,
            "--subject",
            "x",
            "--condition",
            "novalue",
        )


def test_the_metadata_advertises_federation(client, db):
    body = client.get("/.well-known/oauth-authorization-server").json()
    assert body["workload_identity_federation_supported"] is True
    assert "none" not in body["workload_identity_federation_signing_alg_values_supported"]
    assert not any(
        a.startswith("HS") for a in body["workload_identity_federation_signing_alg_values_supported"]
    )


# --- each platform's claim shapes ---------------------------------------------------------------


def test_github_actions_environment_subject_and_conditions(client, app, issuer):
    add_trust(
        app.application,
        issuer.url,
        "repo:acme/api:environment:production",
        preset="github_actions",
        conditions={"job_workflow_ref": ["acme/api/.github/workflows/deploy.yml@refs/heads/main"]},
    )
    ok = issuer.github_actions(audience=AUD, environment="production")
    assert (
        claims_of(present(client, app.client_id, ok))["fed"]["sub"] == "repo:acme/api:environment:production"
    )
    staging = issuer.github_actions(audience=AUD, environment="staging")
    assert_invalid_client(present(client, app.client_id, staging), staging)
    other_workflow = issuer.github_actions(
        audience=AUD,
        environment="production",
        job_workflow_ref="evil/fork/.github/workflows/x.yml@refs/heads/main",
    )
    assert_invalid_client(present(client, app.client_id, other_workflow))


def test_gitlab_ci_token_with_a_wildcard_ref(client, app, issuer):
    add_trust(
        app.application,
        issuer.url,
        "project_path:acme/api:ref_type:branch:ref:release-*",
        preset="gitlab_ci",
        conditions=["ref_protected=true"],
    )
    assert claims_of(present(client, app.client_id, issuer.gitlab_ci(audience=AUD, ref="release-2")))
    feature = issuer.gitlab_ci(audience=AUD, ref="feature-x")
    assert_invalid_client(present(client, app.client_id, feature))
    unprotected = issuer.gitlab_ci(audience=AUD, ref="release-3", ref_protected="false")
    assert_invalid_client(present(client, app.client_id, unprotected))


def test_kubernetes_projected_token_an_hour_old_is_accepted(client, app, issuer):
    add_trust(app.application, issuer.url, "system:serviceaccount:payments:api", preset="kubernetes")
    token = issuer.kubernetes(audience=AUD)
    claims = claims_of(present(client, app.client_id, token))
    assert claims["fed"]["sub"] == "system:serviceaccount:payments:api"
    other_namespace = issuer.kubernetes(audience=AUD, namespace="default")
    assert_invalid_client(present(client, app.client_id, other_namespace))


def test_spiffe_jwt_svid_without_iss_matches_the_trust_domain_bundle(client, app):
    with LocalIssuer(alg="ES256") as spire:
        add_trust(
            app.application,
            "spiffe://acme.example",
            "spiffe://acme.example/ns/payments/sa/api",
            preset="spiffe",
            jwks=json.dumps(spire.jwks()),
        )
        svid = spire.spiffe(audience=AUD)
        assert "iss" not in jwt.decode(svid, options={"verify_signature": False})
        claims = claims_of(present(client, app.client_id, svid))
        assert claims["fed"]["iss"] == "spiffe://acme.example"
        assert spire.fetches() == 0  # the pasted bundle is used, nothing is fetched
        other = spire.spiffe(audience=AUD, spiffe_id="spiffe://acme.example/ns/payments/sa/batch")
        assert_invalid_client(present(client, app.client_id, other))


def test_presets_refuse_a_subject_that_trusts_other_owners(app, issuer):
    for preset, subject in [
        ("github_actions", "repo:*/api:ref:refs/heads/main"),
        ("github_actions", "repo:acme/*"),
        ("kubernetes", "system:serviceaccount:*:api"),
        ("spiffe", "spiffe://*/x"),
        ("custom", "*"),
    ]:
        with pytest.raises(ValidationError) as caught:
            add_trust(app.application, issuer.url, subject, preset=preset)
        assert "subject" in caught.value.message_dict


# --- bad input: every one is invalid_client, quick, never a fetch loop ---------------------------


@pytest.fixture
def github_trust(app, issuer):
    return add_trust(
        app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions"
    )


def test_an_unknown_issuer_is_refused_without_any_fetch(client, app, github_trust, issuer):
    with LocalIssuer() as stranger:
        token = stranger.github_actions(audience=AUD)
        assert_invalid_client(present(client, app.client_id, token), token)
        assert stranger.fetches() == 0 and issuer.fetches() == 0


def test_an_unreachable_issuer_is_refused_quickly(client, app):
    dead = f"http://127.0.0.1:{free_port()}"
    add_trust(app.application, dead, "repo:acme/api:ref:refs/heads/main", preset="github_actions")
    with LocalIssuer() as signer:
        token = signer.token({"iss": dead, "sub": "repo:acme/api:ref:refs/heads/main", "aud": AUD})
    started = time.monotonic()
    assert_invalid_client(present(client, app.client_id, token))
    assert time.monotonic() - started < 2


def test_a_slow_discovery_is_cut_off_at_the_timeout(client, app, github_trust, issuer):
    issuer.delay = 5
    started = time.monotonic()
    assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))
    assert time.monotonic() - started < 4.5  # the 1 s timeout (3 s watchdog), not the issuer's 5 s


@pytest.mark.parametrize(
    "body",
    [
        b"{" * 10,  # not JSON
        b"[]",  # not an object
        b'{"keys": "nope"}',
        b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}',  # only a symmetric key
        json.dumps({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "x"}] * 40}).encode(),
        b'{"keys": []}' + b" " * (federation.MAX_DOCUMENT_BYTES + 10),  # too large
    ],
    ids=["not-json", "array", "keys-not-list", "symmetric", "too-many", "too-large"],
)
def test_a_bad_jwks_is_refused(client, app, github_trust, issuer, body):
    issuer.jwks_override = body
    assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))


def test_discovery_naming_another_issuer_is_refused(client, app, github_trust, issuer):
    issuer.discovery_issuer = "https://token.actions.githubusercontent.com"
    assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))


@pytest.mark.parametrize(
    "claims",
    [
        lambda now: {"exp": now - 120},
        lambda now: {"nbf": now + 600},
        lambda now: {"iat": now + 600},
        lambda now: {"iat": now - 2000, "exp": now + 60},  # older than the preset's 900 s
        lambda now: {"exp": None},
        lambda now: {"aud": "https://someone-else.example"},
        lambda now: {"aud": None},
        lambda now: {"sub": "repo:acme/api:ref:refs/heads/dev"},
        lambda now: {"sub": "repo:acme/api-evil:ref:refs/heads/main"},
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "iat-future",
        "too-old",
        "no-exp",
        "wrong-aud",
        "no-aud",
        "branch",
        "repo",
    ],
)
def test_a_token_failing_a_claim_check_is_refused(client, app, github_trust, issuer, claims):
    # Times are taken when the test runs, not when it is collected (a long run would let
    # "600 s from now" pass).
    token = issuer.github_actions(audience=AUD, **claims(int(time.time())))
    response = present(client, app.client_id, token)
    assert_invalid_client(response, token)


def test_alg_none_and_hs256_with_the_public_key_are_refused(client, app, github_trust, issuer):
    payload = jwt.decode(issuer.github_actions(audience=AUD), options={"verify_signature": False})
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": issuer.kid}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=")
    unsigned = f"{header.decode()}.{body.decode()}."
    assert_invalid_client(present(client, app.client_id, unsigned))
    # The classic confusion: HMAC keyed with the issuer's public key (PEM or JWK text).
    from cryptography.hazmat.primitives import serialization

    pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hmac_header = {"alg": "HS256", "kid": issuer.kid, "typ": "JWT"}
    signing_input = (
        base64.urlsafe_b64encode(json.dumps(hmac_header).encode()).rstrip(b"=").decode() + "." + body.decode()
    )
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(
        hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    ).rstrip(b"=")
    assert_invalid_client(present(client, app.client_id, signing_input + "." + signature.decode()))


def test_a_token_signed_by_another_key_is_refused(client, app, github_trust, issuer):
    from cryptography.hazmat.primitives.asymmetric import rsa

    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = issuer.token(
        {"sub": "repo:acme/api:ref:refs/heads/main", "aud": AUD}, key=impostor
    )  # the issuer's kid, another key
    assert_invalid_client(present(client, app.client_id, token))


def _forged_kids(client, app, issuer, count: int) -> None:
    for n in range(count):
        token = issuer.github_actions(audience=AUD)
        forged = jwt.encode(
            jwt.decode(token, options={"verify_signature": False}),
            issuer.key,
            algorithm="RS256",
            headers={"kid": f"attacker-{n}"},
        )
        assert_invalid_client(present(client, app.client_id, forged))


def test_unknown_kids_refresh_the_keys_at_most_once_per_interval(client, app, github_trust, issuer, settings):
    from django.core.cache import cache

    settings.PORTAL_FEDERATION_KEYS_REFRESH_SECONDS = 60
    # The failed-authentication rate limits would stop the attacker first; lift them to see the cache.
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 1000
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 1000
    assert claims_of(present(client, app.client_id, issuer.github_actions(audience=AUD)))
    assert issuer.fetches() == 2  # discovery, then the JWKS
    _forged_kids(client, app, issuer, 10)
    assert issuer.fetches() == 4  # one refresh (discovery + JWKS) for ten unknown kids
    _forged_kids(client, app, issuer, 10)
    assert issuer.fetches() == 4  # none more within the interval
    # The interval ends (its guard expires in the shared cache): one more refresh, no more.
    cache.delete(federation.REFRESH_GUARD_PREFIX + federation._issuer_digest(issuer.url))
    _forged_kids(client, app, issuer, 10)
    assert issuer.fetches() == 6
    assert claims_of(present(client, app.client_id, issuer.github_actions(audience=AUD)))  # cached keys serve
    assert issuer.fetches() == 6


def test_an_issuer_that_is_down_is_not_asked_again_within_the_interval(client, app, github_trust, issuer):
    issuer.jwks_override = b"<html>502 Bad Gateway</html>"
    for _ in range(5):
        assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))
    assert issuer.fetches() == 2  # one try (discovery + JWKS), then refused without fetching


def test_issuer_key_rotation_picks_up_the_new_kid_and_drops_the_old(client, app, github_trust, issuer):
    old_token = issuer.github_actions(audience=AUD)
    assert claims_of(present(client, app.client_id, old_token))
    leftover = issuer.github_actions(audience=AUD)  # signed with the old key, used after rotation
    issuer.rotate()
    assert claims_of(present(client, app.client_id, issuer.github_actions(audience=AUD)))  # new kid fetched
    assert issuer.fetches() == 4
    assert_invalid_client(present(client, app.client_id, leftover))  # the old kid is gone
    assert issuer.fetches() == 4  # and asking for it fetched nothing more


def test_a_token_of_one_application_presented_with_another_client_id_is_refused(
    client, app, make_app, github_trust, issuer
):
    other = make_app(name="Other service")
    token = issuer.github_actions(audience=AUD)
    assert_invalid_client(present(client, other.client_id, token))
    assert_invalid_client(present(client, "", token))  # no client_id: no trust is looked up
    assert claims_of(present(client, app.client_id, token))  # the jti was not spent by the failures


def test_a_replayed_jti_is_refused_even_at_another_application(client, app, make_app, github_trust, issuer):
    other = make_app(name="Other service")
    add_trust(other.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions")
    token = issuer.github_actions(audience=AUD)
    assert claims_of(present(client, app.client_id, token))
    assert_invalid_client(present(client, app.client_id, token))
    assert_invalid_client(present(client, other.client_id, token))
    assert claims_of(present(client, other.client_id, issuer.github_actions(audience=AUD)))


def test_the_replay_cache_being_down_refuses_tokens_with_a_jti(
    client, app, github_trust, issuer, monkeypatch
):
    from django.core.cache import cache

    monkeypatch.setattr(
        cache, "add", lambda *args, **kwargs: False
    )  # ResilientRedisCache.add while Redis is down
    assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))


class _NeverScanned:
    """Stands in for the base64url pattern: a huge token must be refused before it is scanned."""

    def fullmatch(self, text):
        raise AssertionError(f"a {len(text)}-character segment was scanned")


def test_a_huge_assertion_is_refused_before_it_is_parsed(
    client, app, github_trust, issuer, settings, monkeypatch
):
    huge = "a" * 1_000_000 + "." + "b" * 10 + "." + "c"
    with monkeypatch.context() as scan:
        scan.setattr(federation, "_SEGMENT", _NeverScanned())
        assert federation.authenticate(huge, client_id=app.client_id) is None
    # The endpoint's own body limit (PORTAL_MAX_REQUEST_BYTES) answers first: 413, in OAuth form.
    response = present(client, app.client_id, huge)
    assert response.status_code == 413 and response.json()["error"] == "invalid_request"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024  # a generous limit: the assertion check refuses
    assert_invalid_client(present(client, app.client_id, huge))
    assert issuer.fetches() == 0


def test_a_federated_token_is_refused_with_a_client_secret_or_at_introspection(
    client, app, github_trust, issuer
):
    token = issuer.github_actions(audience=AUD)
    # RFC 6749 §5.2: an assertion and a secret together are two methods, invalid_request.
    response = present(client, app.client_id, token, client_secret=app.client_secret)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    response = client.post(
        "/oauth/introspect",
        {
            "token": "x",
            "client_id": app.client_id,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": token,
        },
    )
    assert response.status_code == 401


# --- SSRF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://token.example.com",
        "https://10.0.0.5",
        "https://169.254.169.254",
        "https://[::1]",
        "https://2130706433",
        "https://user:pw@issuer.example",
        "ftp://issuer.example",
    ],
)
def test_an_issuer_url_to_a_private_or_insecure_place_is_a_field_error(app, url, settings):
    settings.PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST = False  # as in production
    with pytest.raises(ValidationError) as caught:
        add_trust(app.application, url, "repo:acme/api:ref:refs/heads/main")
    assert "issuer" in caught.value.message_dict


def test_plain_http_localhost_needs_the_development_setting(app, settings):
    settings.PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST = False
    with pytest.raises(ValidationError) as caught:
        add_trust(app.application, "http://127.0.0.1:9", "repo:acme/api:ref:refs/heads/main")
    assert "HTTPS" in " ".join(caught.value.message_dict["issuer"])


def test_a_jwks_uri_to_a_private_address_is_not_fetched(client, app, issuer, monkeypatch):
    add_trust(app.application, issuer.url, "repo:acme/api:ref:refs/heads/main", preset="github_actions")
    monkeypatch.setattr(
        federation,
        "_get_json",
        _wrap_discovery(federation._get_json, jwks_uri="https://169.254.169.254/latest/meta-data"),
    )
    connections = []
    real = socket.create_connection
    monkeypatch.setattr(
        socket,
        "create_connection",
        lambda address, *a, **k: connections.append(address) or real(address, *a, **k),
    )
    assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))
    assert all(host == "127.0.0.1" for host, _port in connections)


def test_an_issuer_name_resolving_to_a_private_address_is_not_fetched(client, app, monkeypatch):
    add_trust(app.application, "https://issuer.acme.example", "repo:acme/api:ref:refs/heads/main")

    def private(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", private)
    with LocalIssuer() as signer:
        token = signer.token(
            {"iss": "https://issuer.acme.example", "sub": "repo:acme/api:ref:refs/heads/main", "aud": AUD}
        )
    identity = FederatedIdentity.objects.get()
    report = federation.inspect(token, identity)
    keys = next(c for c in report.checks if c.name == "keys")
    assert keys.passed is False and "non-public" in keys.detail


def _wrap_discovery(real, *, jwks_uri: str):
    def get_json(url, what):
        if what == "discovery":
            document = real(url, what)
            return {**document, "jwks_uri": jwks_uri}
        return real(url, what)

    return get_json


# --- governance: suspension and removal kill the tokens at once ---------------------------------


def test_suspending_or_removing_a_trust_kills_its_tokens(client, app, github_trust, issuer, owner, superuser):
    from credentials.governance import reviews

    access = present(client, app.client_id, issuer.github_actions(audience=AUD)).json()["access_token"]
    assert live_access_token(access, audience=None)
    reviews.credential_suspend(credential=github_trust, actor=None, reason="manual")
    with pytest.raises(Exception, match="revoked"):
        live_access_token(access, audience=None)
    assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))
    introspected = client.post(
        "/oauth/introspect", {"token": access}, HTTP_AUTHORIZATION=_basic(app.client_id, app.client_secret)
    ).json()
    assert introspected == {"active": False}
    # Staff lift a manual suspension (the admin's restore action).
    reviews.credential_restore(credential=github_trust, actor=superuser, as_staff=True)
    assert live_access_token(access, audience=None)
    federated_identity_revoke(identity=github_trust, actor=owner)
    with pytest.raises(Exception, match="revoked"):
        live_access_token(access, audience=None)
    assert_invalid_client(present(client, app.client_id, issuer.github_actions(audience=AUD)))
    actions = list(AuditEvent.objects.filter(target_id=str(github_trust.pk)).values_list("action", flat=True))
    assert {"tokens.federated_identity.suspended", "tokens.federated_identity.restored"} <= set(actions)
    assert "tokens.federated_identity.revoked" in actions


def test_revoking_the_application_removes_its_trusts(client, app, github_trust, owner):
    from tokens.clients.services import m2m_app_revoke

    m2m_app_revoke(application=app.application, actor=owner)
    github_trust.refresh_from_db()
    assert github_trust.status == "revoked" and github_trust.revoked_at is not None
    # Each trust is a credential of its own: its removal is audited (and so sent to webhooks).
    event = AuditEvent.objects.get(action="tokens.federated_identity.revoked", target_id=str(github_trust.pk))
    assert event.actor == owner
    assert event.extra == {
        "id": github_trust.public_id,
        "client_id": app.application.client_id,
        "with_application": True,
    }


def _basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_staff_suspend_a_trust_from_the_admin(app, github_trust):
    from django.test import Client
    from django.urls import reverse

    admin_client = Client()
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)  # staff use the admin only with a second factor
    admin_client.force_login(staff)

    changelist = reverse("admin:tokens_federatedidentity_changelist")
    assert admin_client.get(changelist).status_code == 200
    assert (
        admin_client.get(reverse("admin:tokens_federatedidentity_change", args=[github_trust.pk])).status_code
        == 200
    )
    response = admin_client.post(
        changelist, {"action": "suspend_selected", "_selected_action": [github_trust.pk]}, follow=True
    )
    assert response.status_code == 200
    github_trust.refresh_from_db()
    assert github_trust.status == "suspended" and github_trust.suspension_reason == "manual"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "a.b",
        "!!!!.e30.sig",
        _b64(b"not json") + "." + _b64(b"{}") + ".c2ln",
        _b64(b"[]") + "." + _b64(b"{}") + ".c2ln",
        _b64(b'{"alg":"RS256"}') + "." + _b64(b"[1]") + ".c2ln",
        _b64(b'{"alg":"RS256"}') + "." + _b64(b"\xff\xfe") + ".c2ln",
        _b64(b'{"alg":"RS256"}') + "." + _b64(b"[" * 5000 + b"]" * 5000) + ".c2ln",
        _b64(b'{"alg":"RS256","kid":{"x":1}}') + "." + _b64(b'{"iss":["a"],"sub":1}') + ".c2ln",
    ],
    ids=[
        "two-parts",
        "not-base64url",
        "header-not-json",
        "header-array",
        "claims-array",
        "not-utf8",
        "deep",
        "types",
    ],
)
def test_hostile_tokens_are_invalid_client_never_a_500(client, app, github_trust, token):
    assert_invalid_client(present(client, app.client_id, token))


def test_a_lone_surrogate_in_a_wildcard_subject_is_no_500(client, app, issuer, owner_client):
    identity = add_trust(app.application, issuer.url, "repo:acme/*", preset="custom")
    token = issuer.token({"sub": "repo:acme/\ud800", "aud": AUD})
    response = present(client, app.client_id, token)
    assert response.status_code == 200  # accepted: it matches; the claim is JSON-escaped
    from django.urls import reverse

    page = owner_client.post(
        reverse("org-federated-test", kwargs={"org_slug": "acme", "identity_id": identity.pk}),
        {"token": issuer.token({"sub": "repo:acme/\ud800", "aud": AUD})},
    )
    assert page.status_code == 200


def test_a_spiffe_trust_bundle_as_spire_serves_it_is_usable(client, app):
    """SPIFFE bundles mark their keys `use: jwt-svid` / `x509-svid` (SPIFFE Trust Domain and
    Bundle, section 4), carry no `alg`, and add `spiffe_sequence`; only the JWT-SVID keys verify."""
    with LocalIssuer(alg="ES256") as spire:
        (jwt_authority,) = spire.jwks()["keys"]
        jwt_authority = {k: v for k, v in jwt_authority.items() if k not in ("alg", "use")}
        x509_authority = {**jwt_authority, "kid": "x509", "x5c": ["MIIBfake"]}
        bundle = {
            "keys": [{**x509_authority, "use": "x509-svid"}, {**jwt_authority, "use": "jwt-svid"}],
            "spiffe_sequence": 7,
            "spiffe_refresh_hint": 300,
        }
        add_trust(
            app.application,
            "spiffe://acme.example",
            "spiffe://acme.example/ns/payments/sa/api",
            preset="spiffe",
            jwks=json.dumps(bundle),
        )
        claims = claims_of(present(client, app.client_id, spire.spiffe(audience=AUD)))
        assert claims["fed"]["sub"] == "spiffe://acme.example/ns/payments/sa/api"


def test_the_portals_own_issuer_is_refused_and_a_trust_in_it_made_before_is_inert(client, app, other_app):
    """The portal's access tokens go to resource servers: trusting its own issuer would let any of
    them mint a token for the application with a token it was sent."""
    portal_jwks = json.loads(client.get(reverse("oauth-jwks")).content)
    for issuer in (settings.PORTAL_ISSUER, settings.PORTAL_ISSUER + "/"):
        with pytest.raises(ValidationError) as refused:
            add_trust(app.application, issuer, other_app.client_id, preset="custom", jwks=portal_jwks)
        assert "portal's own issuer" in refused.value.message_dict["issuer"][0]

    # One made before the check (the issuer written straight into the row) authenticates nothing.
    identity = add_trust(
        app.application, "https://ci.example.com", other_app.client_id, preset="custom", jwks=portal_jwks
    )
    FederatedIdentity.objects.filter(pk=identity.pk).update(issuer=settings.PORTAL_ISSUER)
    claims = access_token_claims(
        application=other_app.application,
        scopes=["orders:read"],
        audience=settings.PORTAL_ISSUER,
        lifetime=300,
        secret_id=None,
    )
    assert_invalid_client(present(client, app.client_id, sign_access_token(claims)))
