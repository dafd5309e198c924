"""API-key services: what revoking a key closes with it."""

from __future__ import annotations

import pytest

from credentials.api_keys.services import api_key_revoke
from credentials.governance import approvals
from credentials.governance.models import CredentialRequest, RequestState
from portal.models import AuditEvent
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def test_a_waiting_scope_increase_of_a_revoked_key_is_closed_with_it(organization, owner, member, scopes):
    """It would stay in the approvers' queue, its approval refused (`inactive`): closed instead."""
    key, _ = make_api_key(organization, member, scopes=["orders:read"])
    request = approvals.credential_request_create(
        credential=key,
        requester=member,
        request_type="scope_increase",
        justification="needs writes",
        requested_scopes=["orders:read", "orders:write"],
    )
    api_key_revoke(api_key=key, actor=owner, reason="left the project", via="api")
    request.refresh_from_db()
    assert (request.state, request.decided_by) == (RequestState.CANCELLED, owner)
    event = AuditEvent.objects.get(action="credentials.request.cancelled")
    assert event.target_id == str(key.pk)
    assert event.extra == {
        "request_id": request.pk,
        "type": "scope_increase",
        "reason": "key_revoked",
        "key_id": key.key_id,
        "via": "api",
    }
    assert not CredentialRequest.objects.filter(state=RequestState.PENDING).exists()
