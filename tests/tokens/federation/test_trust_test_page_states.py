"""The "test a token" page of a trust the token endpoint does not use: not "Accepted", and says why."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from credentials.governance.models import SuspensionReason
from credentials.governance.org_policy import policy_update
from credentials.governance.reviews import credential_suspend
from tests.tokens.federation.test_federation import AUD, add_trust, assert_invalid_client, present
from tokens.clients.services import m2m_app_revoke
from tokens.federation.services import federated_identity_revoke
from tokens.models import FederatedIdentity

pytestmark = pytest.mark.django_db

SUBJECT = "repo:acme/api:ref:refs/heads/main"


def _test_page(client, identity, token) -> str:
    url = reverse("org-federated-test", kwargs={"org_slug": "acme", "identity_id": identity.pk})
    response = client.post(url, {"token": token})
    assert response.status_code == 200
    return response.content.decode()


def test_an_active_trust_passes_the_state_check(owner_client, owner, make_app, oidc_issuer):
    app = make_app()
    identity = add_trust(app.application, oidc_issuer.url, SUBJECT, actor=owner, preset="github_actions")

    page = _test_page(owner_client, identity, oidc_issuer.github_actions(audience=AUD))

    assert "This token would get a portal token" in page
    assert "The trust and its application are active" in page


@pytest.mark.parametrize(
    ("state", "sentence"),
    [
        (
            "trust_revoked",
            "The trust is revoked: the token endpoint accepts tokens through active trusts only.",
        ),
        ("trust_suspended", "The trust is suspended (suspended by an administrator)"),
        ("trust_pending", "The trust is pending"),
        (
            "app_revoked",
            "The application is revoked: the token endpoint accepts tokens for active applications",
        ),
        ("app_suspended", "The application is suspended"),
    ],
)
def test_a_trust_the_token_endpoint_does_not_use_is_not_reported_accepted(
    organization, owner, owner_client, make_app, oidc_issuer, state, sentence
):
    app = make_app()
    if state == "trust_pending":
        policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    identity = add_trust(
        app.application,
        oidc_issuer.url,
        SUBJECT,
        actor=owner,
        preset="github_actions",
        **({"justification": "deploys"} if state == "trust_pending" else {}),
    )
    if state == "trust_revoked":
        federated_identity_revoke(identity=identity, actor=owner)
    elif state == "trust_suspended":
        credential_suspend(credential=identity, actor=None, reason=SuspensionReason.MANUAL)
    elif state == "app_revoked":
        m2m_app_revoke(application=app.application, actor=owner)
    elif state == "app_suspended":
        credential_suspend(credential=app.application, actor=None, reason=SuspensionReason.MANUAL)
    identity = FederatedIdentity.objects.get(pk=identity.pk)
    token = oidc_issuer.github_actions(audience=AUD)
    assert_invalid_client(present(Client(), app.client_id, token))  # what the token endpoint says

    page = _test_page(owner_client, identity, token)

    assert "This token would get a portal token" not in page
    assert "This token would be refused" in page
    assert 'data-check="state"' in page and sentence in page, page
