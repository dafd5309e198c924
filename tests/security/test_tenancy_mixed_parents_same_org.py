"""A member's own application in the URL with a child (secret, public key) of someone else's
application of the same organisation: the child is looked up under the URL's parent, so 404, and
the other application's secret or key stays live."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from credentials.governance.org_policy import policy_for
from credentials.webhooks.services import webhook_endpoint_create, webhook_endpoint_ping
from tests.factories import ScopeFactory, make_api_key, make_m2m_app
from tests.security.authority import state
from tests.security.test_authority_matrix import _pem
from tokens.clients.services import client_public_key_add

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh(settings):
    settings.PORTAL_STEP_UP_SECONDS = 3600


def test_member_cannot_revoke_the_owners_secret_or_key_through_their_own_app(
    organization, owner, member, scopes
):
    ScopeFactory(name="m2m_apps:manage")

    policy_for(organization)
    mine, _ = make_m2m_app(organization, member, name="mine", scopes=["orders:read"])
    mine_keyed, _ = make_m2m_app(
        organization, member, name="mine keyed", scopes=["orders:read"], auth_method="private_key_jwt"
    )
    client_public_key_add(application=mine_keyed, jwk_or_pem=_pem(), actor=member)
    theirs, _ = make_m2m_app(organization, owner, name="theirs", scopes=["orders:read"])
    theirs_keyed, _ = make_m2m_app(
        organization, owner, name="theirs keyed", scopes=["orders:read"], auth_method="private_key_jwt"
    )
    their_key = client_public_key_add(application=theirs_keyed, jwk_or_pem=_pem(), actor=owner)
    their_secret = theirs.secrets.first()
    _row, member_key = make_api_key(organization, member, scopes=["m2m_apps:manage"], name="member's")
    session = Client()
    session.force_login(member)
    clients = {"session": session, "key": Client(HTTP_AUTHORIZATION=f"Bearer {member_key}")}
    org = organization.slug
    urls = [
        ("org-app-secret-revoke", {"app_id": mine.pk, "secret_id": their_secret.pk}, False),
        ("org-app-key-revoke", {"app_id": mine_keyed.pk, "public_key_id": their_key.pk}, False),
        ("api-org-m2m-app-secret-revoke", {"app_id": mine.pk, "secret_id": their_secret.pk}, True),
        ("api-org-m2m-app-public-key-revoke", {"app_id": mine_keyed.pk, "public_key_id": their_key.pk}, True),
    ]
    before = state()
    failures = []
    for name, kwargs, rest in urls:
        url = reverse(name, kwargs={"org_slug": org, **kwargs})
        for label, client in clients.items():
            if not rest and label != "session":
                continue
            response = client.post(url, {}, content_type="application/json") if rest else client.post(url)
            if response.status_code != 404:
                failures.append(f"POST {url} as {label}: {response.status_code}")
    assert state() == before
    assert failures == [], "\n".join(failures)


def test_webhook_delivery_of_another_endpoint_is_not_retried(organization, owner, scopes):

    one, _ = webhook_endpoint_create(
        organization=organization, url="https://one.example/h", event_types=["created"], actor=owner
    )
    two, _ = webhook_endpoint_create(
        organization=organization, url="https://two.example/h", event_types=["created"], actor=owner
    )
    delivery = webhook_endpoint_ping(endpoint=two, actor=owner)
    session = Client()
    session.force_login(owner)
    before = state()
    for name in ("org-webhook-delivery-retry", "api-org-webhook-retry"):
        url = reverse(
            name, kwargs={"org_slug": organization.slug, "endpoint_id": one.pk, "delivery_id": delivery.pk}
        )
        response = (
            session.post(url, {}, content_type="application/json")
            if name.startswith("api")
            else session.post(url)
        )
        assert response.status_code == 404, (url, response.status_code)
    assert state() == before
