"""Revoking an application closes what still waits about it: its trusts' requests and its own."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from credentials.governance import approvals
from credentials.governance.models import CredentialRequest, RequestState
from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent
from tests.tokens.federation.test_federation import request_trust
from tokens.clients.services import m2m_app_revoke
from tokens.models import FederatedIdentity, M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting_trust(organization, owner, member, make_app):
    """A member's application with a trust waiting for approval: `(application, trust, request)`."""
    application = make_app(app_owner=member, name="deployer").application
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    identity, request = request_trust(application, member)
    return application, identity, request


def test_a_waiting_trust_of_a_revoked_application_is_closed_with_it(waiting_trust, owner, admin_user):
    """Its request leaves the approvers' queue (cancelled, one event) and the trust ends `denied`."""
    application, identity, request = waiting_trust
    m2m_app_revoke(application=M2MApplication.objects.get(pk=application.pk), actor=owner)
    identity.refresh_from_db()
    request.refresh_from_db()
    assert (identity.status, request.state) == (FederatedIdentity.Status.DENIED, RequestState.CANCELLED)
    assert (request.decided_by, identity.revoked_at) == (owner, None)
    event = AuditEvent.objects.get(action="credentials.request.cancelled")
    assert (event.actor, event.target_id) == (owner, str(identity.pk))
    assert event.extra == {
        "request_id": request.pk,
        "type": "create",
        "reason": "application_revoked",
        "client_id": application.client_id,
    }
    # No second event for the same change: the trust was never active, so nothing was "revoked".
    assert not AuditEvent.objects.filter(action="tokens.federated_identity.revoked").exists()
    with pytest.raises(ValidationError) as refused:
        approvals.credential_request_approve(request=request, actor=admin_user)
    assert refused.value.code == "decided"


def test_an_approved_trust_never_activated_ends_denied_with_its_application(waiting_trust, owner, admin_user):
    application, identity, request = waiting_trust
    approvals.credential_request_approve(request=request, actor=admin_user)
    m2m_app_revoke(application=M2MApplication.objects.get(pk=application.pk), actor=owner)
    identity.refresh_from_db()
    assert (identity.status, identity.revoked_at) == (FederatedIdentity.Status.DENIED, None)
    event = AuditEvent.objects.get(action="tokens.federated_identity.revoked")
    assert event.extra == {
        "id": identity.public_id,
        "client_id": application.client_id,
        "with_application": True,
        "never_issued": True,
    }
    assert not AuditEvent.objects.filter(action="credentials.request.cancelled").exists()


def test_a_waiting_scope_increase_of_a_revoked_application_is_closed_with_it(
    organization, owner, admin_user, member, make_app
):
    """It would stay in the queue, its approval refused (`inactive`): closed instead, its scopes kept."""
    application = make_app(app_owner=member, name="reporter", scopes=["orders:read"]).application
    request = approvals.credential_request_create(
        credential=application,
        requester=member,
        request_type="scope_increase",
        justification="needs writes",
        requested_scopes=["orders:read", "orders:write"],
    )
    m2m_app_revoke(application=M2MApplication.objects.get(pk=application.pk), actor=owner, via="api")
    request.refresh_from_db()
    assert request.state == RequestState.CANCELLED
    event = AuditEvent.objects.get(action="credentials.request.cancelled")
    assert event.target_id == str(application.pk)
    assert event.extra["reason"] == "application_revoked" and event.extra["via"] == "api"
    assert list(application.allowed_scopes.values_list("name", flat=True)) == ["orders:read"]
    assert not CredentialRequest.objects.filter(state=RequestState.PENDING).exists()
