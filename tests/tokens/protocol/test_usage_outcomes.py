"""Usage outcomes of refused M2M clients (issue 18): `expired`, `revoked`, `suspended`, `invalid_secret`.

Real requests through the Django test client at /oauth/token, /oauth/introspect and
/oauth/revoke, counted after `usage.rollup()` (which flushes the process's counters). The
answer to every refused client is the one `invalid_client` of an unknown client, byte for
byte; telling the outcomes apart happens after the response (`tokens.protocol.client_outcomes`).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from credentials import usage
from credentials.governance.reviews import credential_suspend
from credentials.models import UsageBucket
from portal.infra import after_response
from portal.infra.request_context import RequestContext, request_context_restored
from tests.support.usage import outcome_counts
from tests.tokens.conftest import basic, request_token
from tests.tokens.protocol.test_private_key_jwt import make_assertion, post_token, public_pem
from tokens.clients.services import (
    client_public_key_add,
    client_public_key_revoke,
    client_secret_revoke,
    client_secret_rotate,
    m2m_app_revoke,
)
from tokens.models import ClientPublicKey, ClientSecret
from tokens.protocol import client_outcomes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    usage._counts.clear()
    yield
    usage._counts.clear()


def counts(credential_id: str) -> dict[str, int]:
    usage.rollup()
    return outcome_counts(credential_id)


def answer(response) -> tuple:
    """What a client sees: status, body and headers (the request id aside, new on every answer)."""
    headers = {name: value for name, value in response.headers.items() if name != "X-Request-ID"}
    return response.status_code, response.content, headers


@pytest.fixture
def unknown_answer():
    """The answer to an unknown client id with a secret: what every refused client must get."""
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic("m2m_nobody_here", "ips_whatever"),
    )
    assert response.status_code == 401
    assert json.loads(response.content)["error"] == "invalid_client"
    return answer(response)


# --- client secrets --------------------------------------------------------------------------


def test_a_wrong_secret_an_expired_and_a_revoked_secret_are_told_apart(make_app, owner, unknown_answer):
    creds = make_app(name="svc")
    # Rotated with no overlap: the first secret has expired, the second is the live one.
    second, second_plaintext = client_secret_rotate(
        application=creds.application, actor=owner, overlap=timedelta(0)
    )
    assert answer(request_token(Client(), creds)) == unknown_answer  # expired
    assert answer(request_token(Client(), creds, secret="ips_wrong")) == unknown_answer  # invalid_secret
    # A third secret, and the second revoked: its holder is refused beside a live secret.
    client_secret_rotate(application=creds.application, actor=owner, overlap=timedelta(days=1))
    client_secret_revoke(secret=second, actor=owner)
    for _ in range(2):
        assert answer(request_token(Client(), creds, secret=second_plaintext)) == unknown_answer  # revoked
    # With no live secret at all: the first (expired) and the second (revoked) still tell.
    ClientSecret.objects.filter(application=creds.application, revoked_at__isnull=True).exclude(
        pk=second.pk
    ).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert answer(request_token(Client(), creds, secret=second_plaintext)) == unknown_answer  # revoked
    assert answer(request_token(Client(), creds)) == unknown_answer  # expired
    assert counts(creds.client_id) == {"expired": 2, "invalid_secret": 1, "revoked": 3}


def test_a_suspended_application_counts_suspended_only_with_its_secret(make_app, owner, unknown_answer):
    creds = make_app(name="svc")
    credential_suspend(credential=creds.application, actor=owner, reason="manual")
    for _ in range(3):
        assert answer(request_token(Client(), creds)) == unknown_answer
    assert answer(request_token(Client(), creds, secret="ips_wrong")) == unknown_answer
    assert counts(creds.client_id) == {"suspended": 3, "invalid_secret": 1}


def test_a_revoked_application_counts_revoked(make_app, owner, unknown_answer):
    creds = make_app(name="svc")
    m2m_app_revoke(application=creds.application, actor=owner)
    assert answer(request_token(Client(), creds)) == unknown_answer
    assert counts(creds.client_id) == {"revoked": 1}


def test_an_unknown_client_counts_nothing(make_app):
    creds = make_app(name="svc")
    assert request_token(Client(), creds).status_code == 200
    for client_id in ("m2m_unknown", creds.client_id + "x", "\u00e9" * 300):
        response = Client().post(
            "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(client_id, "ips_x")
        )
        assert response.status_code == 401
    assert counts(creds.client_id) == {"valid": 1}
    assert set(UsageBucket.objects.values_list("credential_id", flat=True)) == {creds.client_id}


def test_introspection_and_revocation_count_the_refused_client(make_app, owner, unknown_answer):
    creds = make_app(name="svc")
    credential_suspend(credential=creds.application, actor=owner, reason="manual")
    auth = basic(creds.client_id, creds.client_secret)
    for path in ("/oauth/introspect", "/oauth/revoke"):
        response = Client().post(path, {"token": "eyJ.x.y"}, HTTP_AUTHORIZATION=auth)
        refused = Client().post(path, {"token": "eyJ.x.y"}, HTTP_AUTHORIZATION=basic("m2m_nobody", "ips_x"))
        assert answer(response) == answer(refused)
        assert response.status_code == 401 and json.loads(response.content)["error"] == "invalid_client"
    # Body credentials take the same path.
    Client().post(
        "/oauth/introspect",
        {"token": "x", "client_id": creds.client_id, "client_secret": creds.client_secret},
    )
    assert counts(creds.client_id) == {"suspended": 3}


def test_a_token_request_still_costs_the_same_few_queries(client, make_app, django_assert_max_num_queries):
    creds = make_app(name="svc")
    assert request_token(client, creds).status_code == 200  # warm: signing key, catalogue
    with django_assert_max_num_queries(2):
        assert request_token(client, creds).status_code == 200


def test_the_refusal_is_counted_after_the_response():
    """Inside a request the lookup waits for `request_finished`; outside one it runs at once."""
    ran = []
    with request_context_restored(RequestContext(request_id="r", ip="203.0.113.7", user_agent="")):
        after_response.defer(lambda: ran.append("deferred"))
    assert ran == []
    after_response._run_pending()  # what `request_finished` runs (the test client sends it too)
    assert ran == ["deferred"]
    after_response.defer(lambda: ran.append("at once"))
    assert ran == ["deferred", "at once"]


# --- private_key_jwt -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_private_key_jwt_outcomes(pk_app, owner, rsa_key, second_rsa_key, unknown_answer):
    client_id = pk_app.client_id
    first = pk_app.public_keys.get()
    assert post_token(Client(), make_assertion(rsa_key, client_id)).status_code == 200
    # Signed by a key the application never registered: a wrong credential.
    refused = post_token(Client(), make_assertion(second_rsa_key, client_id))
    assert refused.status_code == 401
    # A live key's signature on an unacceptable assertion (too old): a wrong credential too.
    stale = make_assertion(rsa_key, client_id, iat=int(timezone.now().timestamp()) - 3600)
    assert post_token(Client(), stale).status_code == 401
    # The first key expires after a rotation; the second is added, then revoked.
    client_public_key_add(application=pk_app, jwk_or_pem=public_pem(second_rsa_key), actor=owner)
    ClientPublicKey.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert post_token(Client(), make_assertion(rsa_key, client_id)).status_code == 401  # expired
    second = pk_app.public_keys.exclude(pk=first.pk).get()
    client_public_key_revoke(public_key=second, actor=owner)
    assert post_token(Client(), make_assertion(second_rsa_key, client_id)).status_code == 401  # revoked
    assert counts(client_id) == {"valid": 1, "invalid_secret": 2, "expired": 1, "revoked": 1}


def test_private_key_jwt_suspended_application(pk_app, owner, rsa_key, second_rsa_key):
    credential_suspend(credential=pk_app, actor=owner, reason="manual")
    refused = post_token(Client(), make_assertion(rsa_key, pk_app.client_id))
    unknown = post_token(Client(), make_assertion(rsa_key, "m2m_nobody_here"))
    assert answer(refused) == answer(unknown)
    assert post_token(Client(), make_assertion(second_rsa_key, pk_app.client_id)).status_code == 401
    assert counts(pk_app.client_id) == {"suspended": 1, "invalid_secret": 1}


def test_a_refusal_costs_one_bounded_query_more_whatever_the_secrets(
    client, make_app, owner, django_assert_num_queries
):
    creds = make_app(name="svc")
    plaintexts = [creds.client_secret]
    for _ in range(client_outcomes.MAX_CREDENTIALS + 2):
        _secret, plaintext = client_secret_rotate(
            application=creds.application, actor=owner, overlap=timedelta(0)
        )
        plaintexts.append(plaintext)
    # The live secrets (none match), then the application with its newest 20 secrets.
    with django_assert_num_queries(2):
        assert request_token(client, creds, secret=plaintexts[-2]).status_code == 401
    # Older than the newest 20: no longer told apart from a wrong secret.
    assert request_token(client, creds, secret=plaintexts[0]).status_code == 401
    assert counts(creds.client_id) == {"expired": 1, "invalid_secret": 1}
