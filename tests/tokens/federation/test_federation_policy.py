"""A trust's own runtime policy: set from its page (its own URL), applied at the token endpoint."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from credentials.governance.edits import credential_policy_set
from tests.factories import make_m2m_app
from tokens.federation.services import federated_identity_create
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE

pytestmark = pytest.mark.django_db

INSIDE, OUTSIDE = "203.0.113.7", "198.51.100.9"


def _trust(application, issuer_url):
    identity, _request = federated_identity_create(
        application=application, actor=None, issuer=issuer_url, subject="repo:acme/api:ref:refs/heads/main"
    )
    return identity


def _present(application, oidc_issuer, ip: str):
    return Client().post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": application.client_id,
            "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
            "client_assertion": oidc_issuer.github_actions(audience=settings.PORTAL_ISSUER),
        },
        REMOTE_ADDR=ip,
    )


def test_the_policy_form_on_a_trusts_page_changes_that_trust(
    owner_client, organization, owner, scopes, oidc_issuer
):
    bystander, _secret = make_m2m_app(organization, owner, name="bystander")
    trusting, _secret = make_m2m_app(organization, owner, name="trusting")
    identity = _trust(trusting, oidc_issuer.url)
    page = owner_client.get(reverse("org-federated-detail", args=["acme", identity.pk])).content.decode()
    actions = re.findall(r'<form method="post" action="([^"]*/policy/)"', page)
    assert actions == [reverse("org-federated-policy", args=["acme", identity.pk])]
    owner_client.post(actions[0], {"policy-allowed_ips": INSIDE, "policy-rate_limit": ""})
    identity.refresh_from_db()
    bystander.refresh_from_db()
    assert (identity.allowed_ips, bystander.allowed_ips) == ([f"{INSIDE}/32"], [])


def test_a_trusts_allowlist_is_applied_at_the_token_endpoint(organization, owner, scopes, oidc_issuer):
    application, _secret = make_m2m_app(organization, owner, name="trusting")
    identity = _trust(application, oidc_issuer.url)
    credential_policy_set(credential=identity, actor=owner, allowed_ips=[INSIDE])
    refused = _present(application, oidc_issuer, OUTSIDE)
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    assert _present(application, oidc_issuer, INSIDE).status_code == 200
