"""A federated trust's tokens act for the trust's owner too, as they are now.

A trust is a credential with an owner of its own (docs/m2m.md "Governed like every credential"), and
a credential acts for its owner and never beyond: demoting the owner strips the managers' scopes at
once, removing them strips every portal scope (docs/security.md).

What was wrong: a trust's tokens were bounded by the application owner's role only, at minting and
on every portal request. A trust whose owner (an admin) was demoted kept deciding requests; one
whose owner was removed still created applications over REST. And a trust of an application
holding managers' scopes could be given to a plain member, or made for one.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client

from portal.models import Membership, Role
from portal.services.organizations import membership_change_role, membership_remove
from tests.factories import ScopeFactory
from tests.security.authority import own_request
from tokens.clients.services import m2m_app_create
from tokens.federation.services import federated_identity_create
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE

pytestmark = pytest.mark.django_db

SCOPES = ("requests:decide", "webhooks:manage", "m2m_apps:manage", "orders:read")


@pytest.fixture(autouse=True)
def catalogue(db):
    for name in SCOPES:
        ScopeFactory(name=name)


def _trust_token(application, oidc_issuer) -> str:
    minted = Client().post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": application.client_id,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": oidc_issuer.github_actions(
                audience=settings.PORTAL_ISSUER, repository="alice/ci"
            ),
        },
    )
    assert minted.status_code == 200, minted.content
    return minted.json()["access_token"]


def _setup(organization, owner, admin_user, oidc_issuer):
    application, _secret = m2m_app_create(
        organization=organization, name="owner's automation", owner=owner, actor=owner, scopes=list(SCOPES)
    )
    # The admin adds a trust for their own CI to the owner's application (a manager may): they own it.
    identity, _approval = federated_identity_create(
        application=application,
        actor=admin_user,
        issuer=oidc_issuer.url,
        subject="repo:alice/ci:ref:refs/heads/main",
        owner=admin_user,
    )
    assert identity.owner_id == admin_user.pk
    return application


def _scopes(token) -> set[str]:
    response = Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/v1/whoami")
    assert response.status_code == 200, response.content
    return set(response.json()["scopes"])


MANAGERS_ONLY = {"requests:decide", "webhooks:manage"}


def test_a_trust_of_a_demoted_admin_loses_the_managers_scopes(
    organization, owner, admin_user, member, oidc_issuer
):
    application = _setup(organization, owner, admin_user, oidc_issuer)
    assert _scopes(_trust_token(application, oidc_issuer)) >= MANAGERS_ONLY  # as admin: fine

    membership_change_role(
        membership=Membership.objects.get(user=admin_user, organization=organization),
        role=Role.MEMBER,
        actor=owner,
    )
    token = _trust_token(application, oidc_issuer)
    # The trust's owner is now a plain member: its tokens must not decide requests (someone
    # else's: four eyes is not the point) nor hold the managers' scopes.
    request = own_request(organization, member)
    approved = Client(HTTP_AUTHORIZATION=f"Bearer {token}").post(
        f"/api/v1/orgs/acme/requests/{request.pk}/approve/", {}, "application/json"
    )
    assert approved.status_code == 403, (approved.status_code, approved.content[:300])
    assert not (MANAGERS_ONLY & _scopes(token))


def test_a_trust_of_a_removed_admin_acts_on_the_portal_no_more(organization, owner, admin_user, oidc_issuer):
    application = _setup(organization, owner, admin_user, oidc_issuer)
    membership_remove(
        membership=Membership.objects.get(user=admin_user, organization=organization), actor=owner
    )
    token = _trust_token(application, oidc_issuer)
    # Their credential keeps the customer's API scopes until the orphan is suspended, but no portal
    # scope: no webhooks, no decisions, no new applications.
    created = Client(HTTP_AUTHORIZATION=f"Bearer {token}").post(
        "/api/v1/orgs/acme/m2m-apps/", {"name": "backdoor", "scopes": ["orders:read"]}, "application/json"
    )
    assert created.status_code == 403, (created.status_code, created.content[:300])
    assert not (MANAGERS_ONLY & _scopes(token))


def test_a_trust_of_a_managers_application_cannot_be_given_to_a_member(
    organization, owner, member, oidc_issuer, owner_client
):
    """Reassigning is guarded by what the new owner may hold (docs/security.md: "the same check
    guards ... owner changes"); a trust carries its application's scopes."""
    application, _secret = m2m_app_create(
        organization=organization, name="owner's automation", owner=owner, actor=owner, scopes=list(SCOPES)
    )
    identity, _approval = federated_identity_create(
        application=application,
        actor=owner,
        issuer=oidc_issuer.url,
        subject="repo:alice/ci:ref:refs/heads/main",
    )
    response = owner_client.post(
        f"/orgs/acme/apps/federated/{identity.pk}/owner/", {"owner-owner": member.pk}, follow=True
    )
    assert "Only owners and admins may hold these scopes" in response.content.decode()
    identity.refresh_from_db()
    assert identity.owner_id == owner.pk


def test_a_trust_of_a_managers_application_cannot_be_made_for_a_member(
    organization, owner, member, oidc_issuer
):
    application, _secret = m2m_app_create(
        organization=organization, name="owner's automation", owner=owner, actor=owner, scopes=list(SCOPES)
    )
    with pytest.raises(ValidationError) as refused:
        federated_identity_create(
            application=application,
            actor=owner,
            issuer=oidc_issuer.url,
            subject="repo:alice/ci:ref:refs/heads/main",
            owner=member,
        )
    assert refused.value.error_dict["scopes"][0].code == "scope_beyond_owner"
    assert not application.federated_identities.exists()
