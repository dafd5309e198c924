"""Two REST writes to one M2M application, or to the key it moves from, at once (PostgreSQL): one is
done, the other answers the documented 409, never a 5xx; the audit trail records it once."""

from __future__ import annotations

import pytest

from portal.models import AuditEvent
from tests.support.threads import post_at_once
from tokens.models import M2MApplication

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_an_application_revoked_twice_at_once_is_revoked_once(require_postgres, owner, make_app):
    app = make_app(name="contended")
    path = f"/api/v1/orgs/acme/m2m-apps/{app.application.pk}/revoke/"
    assert sorted(post_at_once(owner, {"a": (path, {}), "b": (path, {})}).values()) == [200, 409]
    assert AuditEvent.objects.filter(action="tokens.m2m_app.revoked").count() == 1


def test_a_secret_revoked_twice_at_once_is_revoked_once(require_postgres, owner, make_app):
    app = make_app(name="contended")
    secret = app.application.secrets.get()
    path = f"/api/v1/orgs/acme/m2m-apps/{app.application.pk}/secrets/{secret.pk}/revoke/"
    assert sorted(post_at_once(owner, {"a": (path, {}), "b": (path, {})}).values()) == [200, 409]
    assert AuditEvent.objects.filter(action="tokens.m2m_app.secret_revoked").count() == 1


def test_a_move_racing_a_rotation_of_the_key_lets_one_through(require_postgres, owner, make_key):
    """docs/api-keys.md: a moved key's rotation answers 409 `moved`; a rotated key is not moved (409)."""
    key, _ = make_key(name="contended")
    base = f"/api/v1/orgs/acme/api-keys/{key.key_id}/"
    statuses = post_at_once(
        owner, {"move": (f"{base}move-to-m2m-app/", {}), "rotate": (f"{base}rotate/", {"overlap_hours": 1})}
    )
    assert sorted(statuses.values()) == [201, 409], statuses
    moved = M2MApplication.objects.filter(moved_from_key=key).count()
    assert moved == (1 if statuses["move"] == 201 else 0)
