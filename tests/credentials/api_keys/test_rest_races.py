"""Two REST writes to one API key at once (PostgreSQL): one is done, the other answers its documented
status, never a 5xx; the audit trail records what was done once."""

from __future__ import annotations

import pytest

from credentials.governance.models import CredentialState
from portal.models import AuditEvent
from tests.support.threads import post_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_key_revoked_twice_at_once_is_revoked_once(require_postgres, owner, make_key):
    key, _ = make_key(name="contended")
    path = f"/api/v1/orgs/acme/api-keys/{key.key_id}/revoke/"
    statuses = post_at_once(owner, {"a": (path, {"reason": "x"}), "b": (path, {"reason": "x"})})
    assert sorted(statuses.values()) == [200, 409]
    assert AuditEvent.objects.filter(action="credentials.api_key.revoked").count() == 1


def test_a_rotation_racing_a_revocation_never_fails(require_postgres, owner, make_key):
    key, _ = make_key(name="contended")
    base = f"/api/v1/orgs/acme/api-keys/{key.key_id}/"
    statuses = post_at_once(
        owner,
        {"rotate": (f"{base}rotate/", {"overlap_hours": 1}), "revoke": (f"{base}revoke/", {"reason": "x"})},
    )
    assert statuses["revoke"] == 200, statuses
    assert statuses["rotate"] in (201, 409), statuses
    key.refresh_from_db()
    assert key.status == CredentialState.REVOKED
