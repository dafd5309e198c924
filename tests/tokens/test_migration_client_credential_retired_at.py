"""Migration tokens 0016: the secrets and public keys a rotation replaced before the deploy get `retired_at`.

A secret was retired when a newer secret of its application was created (only a rotation adds
one) if it had an expiry and was not revoked before; a public key only when a `public_key_added`
audit event with an overlap retired it (a second key may be added without one).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.migrations import migrate_to, migrated_back_to

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("tokens", "0015_signing_key_next")]
AFTER = [("tokens", "0016_client_credential_retired_at")]


@pytest.fixture
def old_apps():
    """The historical models just before 0016; every app migrated back to its latest state afterwards."""
    with migrated_back_to(BEFORE) as apps:
        yield apps


def test_forwards_retires_what_a_rotation_replaced_and_nothing_else(old_apps):
    Organization = old_apps.get_model("portal", "Organization")
    User = old_apps.get_model("portal", "User")
    AuditEvent = old_apps.get_model("portal", "AuditEvent")
    M2MApplication = old_apps.get_model("tokens", "M2MApplication")
    ClientSecret = old_apps.get_model("tokens", "ClientSecret")
    ClientPublicKey = old_apps.get_model("tokens", "ClientPublicKey")
    acme = Organization.objects.create(slug="acme", name="Acme")
    user = User.objects.create(email="owner@acme.test")
    now = timezone.now()
    days = [now - timedelta(days=n) for n in range(10)]  # days[3] is three days ago

    def app(name):
        return M2MApplication.objects.create(
            organization=acme, owner=user, name=name, client_id=f"m2m_{name}"
        )

    def secret(application, name, created_at, expires_at=None, revoked_at=None):
        return ClientSecret.objects.create(
            application=application,
            public_id=name,
            hint=f"ips_{name[:4]}",
            digest="0" * 64,
            pepper_id="p1",
            created_at=created_at,
            expires_at=expires_at,
            revoked_at=revoked_at,
        )

    def key(application, kid, created_at, expires_at=None, revoked_at=None):
        return ClientPublicKey.objects.create(
            application=application,
            kid=kid,
            algorithm="ES256",
            public_jwk={"kty": "EC", "kid": kid},
            created_at=created_at,
            expires_at=expires_at,
            revoked_at=revoked_at,
        )

    def added(application, kid, at, **overlap):
        AuditEvent.objects.create(
            organization=acme,
            action="tokens.m2m_app.public_key_added",
            target_type="tokens.m2mapplication",
            target_id=str(application.pk),
            occurred_at=at,
            extra={"kid": kid, "alg": "ES256", **overlap},
        )

    # Rotated twice, each time with an overlap: the older two are retired when the next came.
    rotated = app("rotated")
    first = secret(rotated, "first", days[9], expires_at=days[5] + timedelta(hours=24))
    second = secret(rotated, "second", days[5], expires_at=now + timedelta(hours=12))
    third = secret(rotated, "third", now - timedelta(hours=12), expires_at=now + timedelta(days=80))
    # Never rotated: its expiry is the policy maximum (or a moved key's), not an overlap.
    policy = secret(app("policy"), "policy", days[2], expires_at=now + timedelta(days=88))
    # Revoked before a new secret was added: no rotation retired it (and none had an expiry to set).
    revoked_first = app("revoked")
    revoked_no_expiry = secret(revoked_first, "gone", days[8], revoked_at=days[7])
    revoked_with_expiry = secret(revoked_first, "gone2", days[8], expires_at=now, revoked_at=days[7])
    after_revoke = secret(revoked_first, "after", days[6])

    keyed = app("keyed")
    chosen = key(keyed, "k-chosen", days[9], expires_at=now + timedelta(days=20))
    added(keyed, "k-chosen", days[9])
    unretired = key(keyed, "k-second", days[8])
    added(keyed, "k-second", days[8])  # no overlap: both stay active
    # A rotation with an overlap: it moved the key without expiry and retired the chosen one too.
    moved_at = days[4]
    replacement = key(keyed, "k-third", moved_at - timedelta(seconds=1))
    ClientPublicKey.objects.filter(pk=unretired.pk).update(expires_at=moved_at + timedelta(hours=3))
    added(
        keyed,
        "k-third",
        moved_at,
        previous_kids=["k-second"],
        previous_keys_stop_at=(moved_at + timedelta(hours=3)).isoformat(),
    )

    new_apps = migrate_to(AFTER)
    secrets = dict(new_apps.get_model("tokens", "ClientSecret").objects.values_list("pk", "retired_at"))
    keys = dict(new_apps.get_model("tokens", "ClientPublicKey").objects.values_list("kid", "retired_at"))
    assert secrets == {
        first.pk: second.created_at,
        second.pk: third.created_at,
        third.pk: None,
        policy.pk: None,
        revoked_no_expiry.pk: None,
        revoked_with_expiry.pk: None,
        after_revoke.pk: None,
    }
    assert keys == {chosen.kid: moved_at, unretired.kid: moved_at, replacement.kid: None}
