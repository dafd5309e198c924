"""Signing-key rotation and client-secret rotation with overlap; revocation takes effect at once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import jwt
import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tests.tokens.conftest import basic, request_token
from tokens.clients.services import client_secret_revoke, client_secret_rotate, m2m_app_revoke
from tokens.jwk import PRIVATE_MEMBERS
from tokens.models import ClientSecret, SigningKey
from tokens.signing import keys
from tokens.signing.services import signing_key_ensure, signing_key_rotate

pytestmark = pytest.mark.django_db


def whoami(client, token):
    return client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")


def introspect(client, creds, token):
    response = client.post(
        "/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret)
    )
    return json.loads(response.content)


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def jwks(client) -> dict:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return json.loads(response.content)


# --- Signing keys ---------------------------------------------------------------------------


def test_first_key_is_created_automatically(client):
    assert SigningKey.objects.count() == 0
    document = jwks(client)
    assert len(document["keys"]) == 1
    key = SigningKey.objects.get()
    assert key.status == SigningKey.Status.ACTIVE and key.algorithm == "RS256"
    assert document["keys"][0]["kid"] == key.kid


def test_token_signed_before_rotation_still_validates_after(client, app, token_for):
    old_token = token_for(app)
    old_kid = kid_of(old_token)
    call_command("rotate_signing_key")
    new_token = token_for(app)
    assert kid_of(new_token) != old_kid
    assert kid_of(new_token) == SigningKey.objects.get(status="active").kid
    # Both validate: at the portal's API and through the published JWKS.
    assert whoami(client, old_token).status_code == 200
    assert whoami(client, new_token).status_code == 200
    published = {k["kid"] for k in jwks(client)["keys"]}
    assert published == {old_kid, kid_of(new_token)}


def test_rotation_to_es256(client, app, token_for):
    token_for(app)
    call_command("rotate_signing_key", "--algorithm", "ES256")
    token = token_for(app)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert whoami(client, token).status_code == 200
    es_key = [k for k in jwks(client)["keys"] if k["kid"] == kid_of(token)][0]
    assert es_key["kty"] == "EC" and es_key["crv"] == "P-256" and es_key["alg"] == "ES256"


def test_jwks_never_contains_private_members(client, app, token_for):
    token_for(app)
    signing_key_rotate(actor=None, algorithm="ES256")
    signing_key_rotate(actor=None, algorithm="RS256")
    document = jwks(client)
    assert len(document["keys"]) == 3
    for key in document["keys"]:
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["use"] == "sig"
        assert set(key) <= {"kty", "kid", "alg", "use", "n", "e", "crv", "x", "y"}


def test_retired_key_leaves_the_jwks_after_its_tokens_expired(client, app, token_for):
    old_token = token_for(app)
    _new, previous = signing_key_rotate(actor=None)
    assert previous.publish_until >= timezone.now() + timedelta(hours=24)
    SigningKey.objects.filter(pk=previous.pk).update(publish_until=timezone.now() - timedelta(seconds=1))
    keys.forget_public_keys()
    assert previous.kid not in {k["kid"] for k in jwks(client)["keys"]}
    assert whoami(client, old_token).status_code == 401


def test_at_most_one_active_key_is_a_database_constraint():
    signing_key_ensure()
    encrypted, jwk = keys.generate_key_material("RS256")
    with pytest.raises(IntegrityError), transaction.atomic():
        SigningKey.objects.create(
            kid=jwk["kid"], algorithm="RS256", encrypted_private_key=encrypted, public_jwk=jwk
        )


def test_private_key_is_encrypted_at_rest():
    key = signing_key_ensure()
    stored = bytes(SigningKey.objects.get(pk=key.pk).encrypted_private_key)
    assert b"PRIVATE KEY" not in stored
    assert keys.decrypt_private_key(key).public_key().public_numbers().n  # decrypts with the configured key


def test_rotation_is_audited(app):
    key, previous = signing_key_rotate(actor=None)
    from portal.models import AuditEvent

    event = AuditEvent.objects.get(action="tokens.signing_key.rotated")
    assert event.extra["kid"] == key.kid


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_leave_exactly_one_active_key(require_postgres):
    signing_key_ensure()
    barrier = threading.Barrier(4)
    errors = []

    def rotate():
        try:
            barrier.wait()
            signing_key_rotate(actor=None)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=rotate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert SigningKey.objects.filter(status="active").count() == 1
    assert SigningKey.objects.count() == 5


# --- Client secrets -------------------------------------------------------------------------


def test_both_secrets_work_inside_the_overlap_and_only_the_new_one_after(client, app, owner):
    new_secret, new_plaintext = client_secret_rotate(
        application=app.application, overlap=timedelta(hours=24), actor=owner
    )
    old = ClientSecret.objects.exclude(pk=new_secret.pk).get()
    assert old.expires_at is not None
    assert request_token(client, app).status_code == 200
    assert request_token(client, app, secret=new_plaintext).status_code == 200
    # The overlap ends.
    ClientSecret.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert request_token(client, app).status_code == 401
    assert request_token(client, app, secret=new_plaintext).status_code == 200


def test_zero_overlap_stops_the_old_secret_at_once(client, app, owner):
    _secret, new_plaintext = client_secret_rotate(
        application=app.application, overlap=timedelta(0), actor=owner
    )
    assert request_token(client, app).status_code == 401
    assert request_token(client, app, secret=new_plaintext).status_code == 200


def test_tokens_minted_before_the_overlap_ends_stay_valid(client, app, owner, token_for):
    token = token_for(app)
    client_secret_rotate(application=app.application, overlap=timedelta(0), actor=owner)
    assert whoami(client, token).status_code == 200


def test_overlap_is_limited_to_seven_days(app, owner):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        client_secret_rotate(application=app.application, overlap=timedelta(days=8), actor=owner)
    with pytest.raises(ValidationError):
        client_secret_rotate(application=app.application, overlap=timedelta(hours=-1), actor=owner)


def test_revoking_a_secret_rejects_it_and_its_tokens_at_once(client, app, owner, token_for):
    token = token_for(app)
    new_secret, new_plaintext = client_secret_rotate(
        application=app.application, overlap=timedelta(hours=24), actor=owner
    )
    token_from_new = json.loads(request_token(client, app, secret=new_plaintext).content)["access_token"]
    client_secret_revoke(secret=ClientSecret.objects.exclude(pk=new_secret.pk).get(), actor=owner)
    assert request_token(client, app).status_code == 401
    assert whoami(client, token).status_code == 401
    assert introspect(client, app.__class__(app.application, app.client_id, new_plaintext), token) == {
        "active": False
    }
    assert whoami(client, token_from_new).status_code == 200


def test_revoking_the_application_rejects_its_live_tokens_at_once(client, app, make_app, owner, token_for):
    token = token_for(app)
    observer = make_app(name="Observer")
    assert introspect(client, observer, token)["active"] is True
    assert whoami(client, token).status_code == 200
    m2m_app_revoke(application=app.application, actor=owner)
    assert introspect(client, observer, token) == {"active": False}
    response = whoami(client, token)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert request_token(client, app).status_code == 401


def test_last_used_is_recorded(client, app):
    assert app.application.secrets.get().last_used_at is None
    request_token(client, app)
    assert app.application.secrets.get().last_used_at is not None


def test_live_secrets_are_capped(app, owner):
    from django.core.exceptions import ValidationError

    for _ in range(4):
        client_secret_rotate(application=app.application, overlap=timedelta(days=1), actor=owner)
    with pytest.raises(ValidationError):
        client_secret_rotate(application=app.application, overlap=timedelta(days=1), actor=owner)


def test_secrets_are_stored_as_keyed_digests_only(app):
    secret = app.application.secrets.get()
    assert app.client_secret not in (secret.digest, secret.hint, secret.public_id)
    assert len(secret.digest) == 64
    assert app.application.client_secret == ""
    assert app.client_secret.startswith("ips_") and len(app.client_secret) == 36


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_secret_rotations_stay_within_the_cap(require_postgres, app, owner):
    from django.core.exceptions import ValidationError

    barrier = threading.Barrier(6)
    outcomes = []

    def rotate():
        try:
            barrier.wait()
            client_secret_rotate(application=app.application, overlap=timedelta(days=1), actor=owner)
            outcomes.append("rotated")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=rotate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One initial secret plus four rotations reach the cap of five live secrets; the rest are refused.
    assert sorted(outcomes) == ["refused", "refused"] + ["rotated"] * 4
    assert ClientSecret.objects.filter(application=app.application).count() == 5
