"""Four eyes and self-widening when a machine decides a request (BRIEF.md, "The authority rule").

A request is never decided by its requester, not through a credential the requester holds the
secret of: that includes a trust they added (their workload mints the application's tokens)
and a secret they were shown that has since stopped while its token lives on. And no credential
widens itself by approving a scope increase of its own.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from credentials.governance.approvals import credential_request_create
from credentials.governance.models import RequestState, RequestType
from credentials.governance.org_policy import policy_for
from tests.factories import ScopeFactory
from tests.security.authority import own_request, state, token_for
from tokens.clients.services import client_secret_revoke, client_secret_rotate, m2m_app_create
from tokens.federation.services import federated_identity_create, federated_identity_revoke
from tokens.models import M2MApplication
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE

pytestmark = pytest.mark.django_db

SCOPES = ("requests:decide", "orders:read", "orders:write", "webhooks:manage")


@pytest.fixture(autouse=True)
def catalogue(db):
    return {name: ScopeFactory(name=name) for name in SCOPES}


def _approve(bearer: str, request):
    url = reverse("api-org-request-approve", args=[request.organization.slug, request.pk])
    return Client(HTTP_AUTHORIZATION=f"Bearer {bearer}").post(url, {}, "application/json")


def _refused(response, code: str, request, before) -> None:
    assert response.status_code == 403, (response.status_code, response.content)
    assert response.json()["code"] == code
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and request.decided_by is None
    assert state() == before


def _the_owners_approver(organization, owner) -> M2MApplication:
    application, _secret = m2m_app_create(
        organization=organization,
        name="approver",
        owner=owner,
        actor=owner,
        scopes=["requests:decide", "orders:read"],
    )
    return application


def test_a_trust_the_requester_added_cannot_approve_their_request(
    organization, owner, admin_user, oidc_issuer
):
    application = _the_owners_approver(organization, owner)
    # A manager may add a trust to anyone's application: here, their own CI.
    identity, approval = federated_identity_create(
        application=application,
        actor=admin_user,
        issuer=oidc_issuer.url,
        subject="repo:admin/own:ref:refs/heads/main",
    )
    assert approval is None and identity.status == "active"
    request = own_request(organization, admin_user)
    minted = Client().post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": application.client_id,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": oidc_issuer.github_actions(
                audience=settings.PORTAL_ISSUER, repository="admin/own"
            ),
        },
    )
    assert minted.status_code == 200, minted.content
    token = minted.json()["access_token"]
    _refused(_approve(token, request), "four_eyes", request, state())

    # With the trust closed, its tokens are dead, and the application's other tokens may decide.
    federated_identity_revoke(identity=identity, actor=owner)
    assert _approve(token, request).status_code == 401
    _s, owners_secret = client_secret_rotate(application=application, actor=owner)
    approved = _approve(token_for(application, owners_secret), request)
    assert approved.status_code == 200, approved.content


def test_a_token_from_a_secret_the_requester_was_shown_still_counts_after_the_secret_stops(
    organization, owner, admin_user
):
    application = _the_owners_approver(organization, owner)
    # A manager may rotate anyone's application: they are shown the new secret and mint with it...
    _first, shown = client_secret_rotate(application=application, actor=admin_user, overlap=timedelta(0))
    token = token_for(application, shown)
    # ...then retire it without overlap (it stops; its tokens live on) and revoke the newer one.
    newer, _p = client_secret_rotate(application=application, actor=admin_user, overlap=timedelta(0))
    client_secret_revoke(secret=newer, actor=admin_user)
    request = own_request(organization, admin_user)
    _refused(_approve(token, request), "four_eyes", request, state())

    # A token minted with a secret the owner issued may decide: the refusal is about who minted.
    _s, owners_secret = client_secret_rotate(application=application, actor=owner)
    approved = _approve(token_for(application, owners_secret), request)
    assert approved.status_code == 200, approved.content


@pytest.fixture
def scope_increases_need_approval(organization):
    policy = policy_for(organization)
    policy.approve_scope_increases = True
    policy.save()


def _increase(credential, requester, scopes):
    return credential_request_create(
        credential=credential,
        requester=requester,
        request_type=RequestType.SCOPE_INCREASE,
        justification="more",
        requested_scopes=list(scopes),
    )


@pytest.mark.usefixtures("scope_increases_need_approval")
def test_a_deciding_key_does_not_approve_widening_itself(organization, owner, admin_user):
    bot, secret = api_key_create(
        organization=organization,
        name="approval bot",
        owner=admin_user,
        scopes=["requests:decide"],
        actor=admin_user,
    )
    request = _increase(bot, owner, SCOPES)
    _refused(_approve(secret, request), "exceeds_credential", request, state())
    assert ApiKey.objects.get(pk=bot.pk).scopes == ["requests:decide"]

    # The same bot decides another credential's increase: deciding is what it is for.
    other, _other_secret = api_key_create(
        organization=organization, name="export", owner=owner, scopes=["orders:read"], actor=owner
    )
    approved = _approve(secret, _increase(other, owner, ["orders:read", "orders:write"]))
    assert approved.status_code == 200, approved.content
    assert sorted(ApiKey.objects.get(pk=other.pk).scopes) == ["orders:read", "orders:write"]


@pytest.mark.usefixtures("scope_increases_need_approval")
def test_an_applications_token_does_not_approve_widening_its_application(organization, owner, admin_user):
    application, secret = m2m_app_create(
        organization=organization,
        name="approval app",
        owner=admin_user,
        actor=admin_user,
        scopes=["requests:decide"],
    )
    request = _increase(application, owner, ["requests:decide", "webhooks:manage"])
    _refused(_approve(token_for(application, secret), request), "exceeds_credential", request, state())
    assert sorted(application.allowed_scopes.values_list("name", flat=True)) == ["requests:decide"]
