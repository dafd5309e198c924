"""Every verification outcome, through the service, `GET /api/v1/whoami` and `POST /api/v1/keys/verify`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from credentials.api_keys import keys
from credentials.api_keys.authentication import INVALID_CREDENTIAL
from credentials.api_keys.services import api_key_revoke, api_key_rotate
from credentials.api_keys.verification import api_key_verify
from portal.infra.crypto import crc32_base62
from portal.selectors import role_of

pytestmark = pytest.mark.django_db

WHOAMI = "/api/v1/whoami"
VERIFY = "/api/v1/keys/verify"


def _wrong_secret(plaintext: str) -> str:
    """Return a well-formed key with the same key id and a different secret (valid checksum)."""
    body = plaintext[:-6]
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    return flipped + crc32_base62(flipped)


def _bad_checksum(plaintext: str) -> str:
    return plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")


def _unknown(plaintext: str) -> str:
    _key_id, other = keys.generate("live")
    return other


@pytest.fixture
def later(monkeypatch):
    """Move the clock forward by a timedelta (everything reads django.utils.timezone.now)."""
    real_now = timezone.now

    def move(delta: timedelta) -> None:
        monkeypatch.setattr(timezone, "now", lambda: real_now() + delta)

    return move


def test_service_outcomes(make_key, owner, later, django_assert_num_queries):
    api_key, plaintext = make_key(scopes=["orders:read", "orders:write"])
    result = api_key_verify(plaintext)
    assert result.valid and result.code == ""
    principal = result.principal()
    assert principal.credential_type == "api_key"
    assert principal.organization_slug == "acme"
    assert principal.scopes == {"orders:read", "orders:write"}
    assert principal.owner_email == owner.email

    assert api_key_verify(_wrong_secret(plaintext)).code == "not_found"
    assert api_key_verify(_unknown(plaintext)).code == "not_found"
    with django_assert_num_queries(0):
        assert api_key_verify(_bad_checksum(plaintext)).code == "malformed"
        assert api_key_verify("ipk_live_short").code == "malformed"
        assert api_key_verify("not a key at all").code == "malformed"

    expiring, expiring_plain = make_key(name="soon", expires_at=timezone.now() + timedelta(hours=1))
    assert api_key_verify(expiring_plain).valid
    later(timedelta(hours=2))
    assert api_key_verify(expiring_plain).code == "expired"


def test_rotated_key_works_inside_its_overlap_and_stops_after(make_key, owner, later):
    old, old_plain = make_key()
    successor, new_plain = api_key_rotate(api_key=old, actor=owner, overlap=timedelta(hours=24))
    assert api_key_verify(old_plain).valid
    assert api_key_verify(new_plain).valid
    later(timedelta(hours=23))
    assert api_key_verify(old_plain).valid
    later(timedelta(hours=25))
    assert api_key_verify(old_plain).code == "expired"
    assert api_key_verify(new_plain).valid


def test_zero_overlap_stops_the_old_key_at_once(make_key, owner):
    old, old_plain = make_key()
    api_key_rotate(api_key=old, actor=owner, overlap=timedelta(0))
    assert api_key_verify(old_plain).code == "expired"


def test_revocation_takes_effect_despite_a_cached_entry(make_key, owner, django_assert_num_queries):
    api_key, plaintext = make_key()
    assert api_key_verify(plaintext).valid  # now cached
    with django_assert_num_queries(0):
        assert api_key_verify(plaintext).valid
    api_key_revoke(api_key=api_key, actor=owner, reason="leaked")
    assert api_key_verify(plaintext).code == "revoked"


def test_verification_uses_at_most_one_query_and_none_when_cached(make_key, django_assert_max_num_queries):
    _api_key, plaintext = make_key()
    from django.core.cache import cache

    cache.clear()
    with django_assert_max_num_queries(1):
        assert api_key_verify(plaintext).valid
    with django_assert_max_num_queries(0):
        assert api_key_verify(plaintext).valid
    # A wrong secret on a cached key id is still compared against the digest, not trusted.
    with django_assert_max_num_queries(0):
        assert not api_key_verify(_wrong_secret(plaintext)).valid


def _model_snapshot(api_key) -> dict:
    """What the snapshot holds, read from the model (the verification reads it with one raw query)."""
    return {
        "pk": api_key.pk,
        "key_id": api_key.key_id,
        "pepper_id": api_key.pepper_id,
        "digest": api_key.digest,
        "status": api_key.status,
        "expires_at": api_key.expires_at.timestamp() if api_key.expires_at else None,
        "organization_id": api_key.organization_id,
        "organization_slug": api_key.organization.slug,
        "owner_id": api_key.owner_id,
        "owner_email": api_key.owner.email if api_key.owner_id else None,
        "owner_role": role_of(api_key.owner_id, api_key.organization_id),
        "scopes": list(api_key.scopes),
        "environment": api_key.environment,
        "name": api_key.name,
        "allowed_ips": list(api_key.allowed_ips or []),
        "rate_limit": api_key.rate_limit or None,
        "lineage": api_key.lineage,
    }


def test_database_snapshot_matches_the_model_snapshot(make_key, owner):
    """The verification query (raw SQL) reads exactly what the model would: every field, every shape."""
    from credentials.api_keys.models import ApiKey
    from credentials.api_keys.verification import _snapshot_from_database

    expiring, _ = make_key(name="expiring", expires_at=timezone.now() + timedelta(days=3, microseconds=7))
    ownerless, _ = make_key(name="ownerless", scopes=["orders:read", "orders:write"])
    ApiKey.objects.filter(pk=ownerless.pk).update(owner=None)
    pending, _ = make_key(name="pending", scopes=[])
    ApiKey.objects.filter(pk=pending.pk).update(digest=None, pepper_id="", status="pending")
    revoked, _ = make_key(name="revoked", environment="test")
    api_key_revoke(api_key=revoked, actor=owner, reason="test")

    for api_key in (expiring, ownerless, pending, revoked):
        from_model = _model_snapshot(
            ApiKey.objects.select_related("organization", "owner").get(pk=api_key.pk)
        )
        from_sql = _snapshot_from_database(api_key.key_id)
        assert from_sql == from_model
        assert [type(v) for v in from_sql.values()] == [type(v) for v in from_model.values()]
    assert _snapshot_from_database(expiring.key_id)["expires_at"] == pytest.approx(
        expiring.expires_at.timestamp(), abs=1e-6
    )
    assert _snapshot_from_database(ownerless.key_id)["owner_email"] is None
    assert _snapshot_from_database(keys.generate("live")[0]) is None


def test_the_cache_never_holds_the_plaintext(make_key):
    from django.core.cache import cache

    api_key, plaintext = make_key()
    api_key_verify(plaintext)
    # LocMemCache pickles its values; search every stored value for the key.
    stored = b"".join(cache._cache.values())
    assert api_key.key_id.encode() in stored
    assert plaintext.encode() not in stored
    assert plaintext[len("ipk_live_") + 12 : -6].encode() not in stored


# --- over HTTP ------------------------------------------------------------------------------


def _all_outcomes(make_key, owner):
    valid, valid_plain = make_key(name="valid", scopes=["orders:read"])
    revoked, revoked_plain = make_key(name="revoked")
    api_key_revoke(api_key=revoked, actor=owner, reason="test")
    expiring, expiring_plain = make_key(name="expiring", expires_at=timezone.now() + timedelta(hours=1))
    rotated, rotated_plain = make_key(name="rotated")
    api_key_rotate(api_key=rotated, actor=owner, overlap=timedelta(hours=24))
    return {
        "valid": valid_plain,
        "wrong_secret": _wrong_secret(valid_plain),
        "bad_checksum": _bad_checksum(valid_plain),
        "unknown": _unknown(valid_plain),
        "revoked": revoked_plain,
        "expiring": expiring_plain,
        "rotated": rotated_plain,
    }


def test_whoami_for_every_outcome(make_key, owner, later, api_key_client, django_assert_num_queries):
    presented = _all_outcomes(make_key, owner)
    for header in ("bearer", "x-api-key"):
        response = api_key_client(presented["valid"], header=header).get(WHOAMI)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["credential_type"] == "api_key"
        assert body["organization"] == "acme"
        assert body["scopes"] == ["orders:read"]
        assert body["owner"] == owner.email
        assert body["environment"] == "live"
    # Inside the overlap the rotated key still works.
    assert api_key_client(presented["rotated"]).get(WHOAMI).status_code == 200
    assert api_key_client(presented["expiring"]).get(WHOAMI).status_code == 200

    later(timedelta(hours=25))
    failures = ["wrong_secret", "bad_checksum", "unknown", "revoked", "expiring", "rotated"]
    bodies = set()
    for outcome in failures:
        for header in ("bearer", "x-api-key"):
            if outcome == "bad_checksum":
                with django_assert_num_queries(0):
                    response = api_key_client(presented[outcome], header=header).get(WHOAMI)
            else:
                response = api_key_client(presented[outcome], header=header).get(WHOAMI)
            assert response.status_code == 401, (outcome, response.content)
            assert response["WWW-Authenticate"].startswith("Bearer")
            bodies.add(response.content)
    assert bodies == {b'{"detail":"%s","code":"authentication_failed"}' % INVALID_CREDENTIAL.encode()}
    # The valid key is still valid after the others expired.
    assert api_key_client(presented["valid"]).get(WHOAMI).status_code == 200


def test_whoami_refuses_keys_in_the_url_query(make_key, client):
    _api_key, plaintext = make_key()
    for url in (f"{WHOAMI}?api_key={plaintext}", f"{WHOAMI}?key={plaintext}", f"{WHOAMI}?x={plaintext}"):
        response = client.get(url)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response.json() == {"detail": INVALID_CREDENTIAL, "code": "authentication_failed"}


def test_whoami_without_a_credential_is_401(client):
    response = client.get(WHOAMI)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_non_key_bearer_values_are_left_to_other_authenticators(make_key, client):
    # A JWT-looking bearer is not ours; with no other authenticator accepting it, it is simply 401.
    response = client.get(WHOAMI, HTTP_AUTHORIZATION="Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig")
    assert response.status_code == 401


def test_keys_verify_for_every_outcome(make_key, owner, later, api_key_client):
    presented = _all_outcomes(make_key, owner)
    _verifier, verifier_plain = make_key(name="verifier", scopes=["api_keys:verify"])
    verifier = api_key_client(verifier_plain)

    def verify(key):
        response = verifier.post(VERIFY, {"key": key}, content_type="application/json")
        assert response.status_code == 200, response.content
        assert response["Cache-Control"] == "no-store"
        return response.json()

    body = verify(presented["valid"])
    assert body["valid"] is True
    assert body["organization"] == "acme"
    assert body["owner"] == owner.email
    assert body["scopes"] == ["orders:read"]
    assert body["environment"] == "live"
    assert body["key_id"] == presented["valid"][9:21]
    assert body["expires_at"] is None
    assert verify(presented["rotated"])["valid"] is True
    assert verify(presented["expiring"])["valid"] is True
    assert verify(presented["wrong_secret"]) == {"valid": False, "code": "not_found"}
    assert verify(presented["unknown"]) == {"valid": False, "code": "not_found"}
    assert verify(presented["bad_checksum"]) == {"valid": False, "code": "malformed"}
    assert verify("hello") == {"valid": False, "code": "malformed"}
    assert verify(presented["revoked"]) == {"valid": False, "code": "revoked"}
    later(timedelta(hours=25))
    assert verify(presented["rotated"]) == {"valid": False, "code": "expired"}
    assert verify(presented["expiring"]) == {"valid": False, "code": "expired"}


def test_keys_verify_needs_a_credential_with_the_verify_scope(make_key, owner, later, api_key_client, client):
    presented = _all_outcomes(make_key, owner)
    response = api_key_client(presented["valid"]).post(
        VERIFY, {"key": presented["valid"]}, "application/json"
    )
    assert response.status_code == 403
    assert "api_keys:verify" in response.json()["detail"]
    response = client.post(VERIFY, {"key": presented["valid"]}, "application/json")
    assert response.status_code == 401
    later(timedelta(hours=25))
    bodies = set()
    for outcome in ("wrong_secret", "bad_checksum", "unknown", "revoked", "rotated", "expiring"):
        response = api_key_client(presented[outcome]).post(
            VERIFY, {"key": presented["valid"]}, "application/json"
        )
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        bodies.add(response.content)
    # No credential at all answers exactly like an unusable one, as at whoami.
    response = client.post(VERIFY, {"key": presented["valid"]}, "application/json")
    assert response["WWW-Authenticate"].startswith("Bearer")
    bodies.add(response.content)
    bodies.add(client.get(WHOAMI).content)
    assert len(bodies) == 1


def test_keys_verify_rejects_a_bad_request(make_key, api_key_client):
    _verifier, verifier_plain = make_key(name="verifier", scopes=["api_keys:verify"])
    response = api_key_client(verifier_plain).post(VERIFY, {}, content_type="application/json")
    assert response.status_code == 400
    assert "key" in response.json()


def test_whoami_query_count(make_key, api_key_client, django_assert_max_num_queries):
    _api_key, plaintext = make_key()
    client = api_key_client(plaintext)
    # Cold: one lookup, plus the throttled last-used write after the response.
    with django_assert_max_num_queries(2):
        assert client.get(WHOAMI).status_code == 200
    # Warm: the cache answers and last-used was written less than a minute ago.
    with django_assert_max_num_queries(0):
        assert client.get(WHOAMI).status_code == 200
