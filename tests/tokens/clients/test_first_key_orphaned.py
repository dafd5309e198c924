"""A private_key_jwt application approved for a member who left since: its first key does not activate it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from credentials.governance.approvals import credential_request_approve
from credentials.governance.models import CredentialStatus
from credentials.governance.org_policy import policy_update
from credentials.governance.ownership import credential_reassign_owner
from portal.models import AuditEvent, Membership, Role
from portal.services.organizations import membership_remove
from tests.factories import ScopeFactory, make_api_key
from tests.support.pem import pem_pair
from tokens.clients.services import client_public_key_add, m2m_app_request
from tokens.models import ClientPublicKey, M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def left_and_rejoined(organization, owner, member, scopes) -> M2MApplication:
    """Return a keyed application approved for `member`, who was then removed and re-invited."""
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    application, request = m2m_app_request(
        organization=organization,
        name="Requested",
        owner=member,
        scopes=["orders:read"],
        auth_method="private_key_jwt",
        requester=member,
        justification="needed",
    )
    credential_request_approve(request=request, actor=owner)
    membership_remove(membership=Membership.objects.get(user=member, organization=organization), actor=owner)
    Membership.objects.create(organization=organization, user=member, role=Role.MEMBER)  # re-invited
    application.refresh_from_db()
    assert application.orphaned_at is not None and application.status == CredentialStatus.PENDING
    return application


def _not_activated(application: M2MApplication) -> None:
    application.refresh_from_db()
    assert application.status == CredentialStatus.PENDING, "activated by a rejoining leaver"
    assert not ClientPublicKey.objects.filter(application=application).exists()
    assert not AuditEvent.objects.filter(action="tokens.m2m_app.public_key_added").exists()


def test_the_service_refuses_the_first_key_as_it_refuses_the_first_secret(left_and_rejoined, member, owner):
    """Refused like `credential_secret_issue` (code `orphaned`); an admin's reassignment clears it."""
    with pytest.raises(ValidationError) as refused:
        client_public_key_add(application=left_and_rejoined, jwk_or_pem=pem_pair()[1], actor=member)
    assert refused.value.code == "orphaned"
    _not_activated(left_and_rejoined)

    credential_reassign_owner(credential=left_and_rejoined, owner=member, actor=owner)
    client_public_key_add(application=left_and_rejoined, jwk_or_pem=pem_pair()[1], actor=member)
    left_and_rejoined.refresh_from_db()
    assert left_and_rejoined.status == CredentialStatus.ACTIVE


def test_the_dashboard_says_why_the_key_was_not_registered(left_and_rejoined, member, settings):
    settings.PORTAL_STEP_UP_SECONDS = 3600
    client = Client()
    client.force_login(member)
    response = client.post(
        reverse("org-app-key-add", kwargs={"org_slug": "acme", "app_id": left_and_rejoined.pk}),
        {"public_key": pem_pair()[1], "algorithm": ""},
    )
    assert response.status_code == 400
    assert "Its owner left the organisation since it was approved" in response.content.decode()
    _not_activated(left_and_rejoined)


def test_the_rest_api_refuses_the_first_key(organization, left_and_rejoined, member):
    ScopeFactory(name="m2m_apps:manage")
    _row, key = make_api_key(organization, member, scopes=["m2m_apps:manage", "orders:read"])
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
        f"/api/v1/orgs/{organization.slug}/m2m-apps/{left_and_rejoined.pk}/public-keys/",
        {"public_key": pem_pair()[1]},
        content_type="application/json",
    )
    # A state that does not allow the action: 409 with its code, as `not_approved` (docs/m2m.md).
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "orphaned"
    assert "Its owner left the organisation" in response.json()["detail"]
    _not_activated(left_and_rejoined)
