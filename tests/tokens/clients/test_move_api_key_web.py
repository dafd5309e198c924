"""Moving an API key over REST and in the dashboard: authority, refusals, the one-time reveal, the links."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from credentials.api_keys.verification import api_key_verify
from credentials.governance.org_policy import policy_update
from tests.factories import ScopeFactory
from tests.tokens.conftest import AppCredentials, request_token
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def portal_scopes(scopes):
    return [ScopeFactory(name="api_keys:manage"), ScopeFactory(name="m2m_apps:manage")]


@pytest.fixture
def key(make_key):
    return make_key(name="exporter")


def bearer(plaintext: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")


def move_url(api_key: ApiKey, org: str = "acme") -> str:
    return f"/api/v1/orgs/{org}/api-keys/{api_key.key_id}/move-to-m2m-app/"


def test_rest_move_by_a_key_holding_both_manage_scopes(client, organization, owner, portal_scopes, key):
    api_key, plaintext = key
    _manager, manager_plain = api_key_create(
        organization=organization,
        name="automation",
        owner=owner,
        scopes=["api_keys:manage", "m2m_apps:manage", "orders:read"],
        actor=owner,
    )
    response = bearer(manager_plain).post(move_url(api_key), {}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert (
        body["status"] == "active" and body["key_id"] == api_key.key_id and body["scopes"] == ["orders:read"]
    )
    application = M2MApplication.objects.get(pk=body["id"])
    creds = AppCredentials(application, body["client_id"], body["client_secret"])
    assert request_token(client, creds).status_code == 200
    assert api_key_verify(plaintext).valid

    again = bearer(manager_plain).post(move_url(api_key), {}, content_type="application/json")
    assert again.status_code == 409
    assert again.json()["code"] == "moved"


def test_rest_move_needs_m2m_apps_manage_too(organization, owner, portal_scopes, key):
    api_key, _ = key
    _manager, manager_plain = api_key_create(
        organization=organization,
        name="keys only",
        owner=owner,
        scopes=["api_keys:manage", "orders:read"],
        actor=owner,
    )
    response = bearer(manager_plain).post(move_url(api_key), {}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert "m2m_apps:manage" in response.json()["detail"]
    assert not M2MApplication.objects.exists()


def test_rest_move_of_another_organisations_key_is_404(outsider_client, key):
    api_key, _ = key
    assert (
        outsider_client.post(move_url(api_key, "globex"), {}, content_type="application/json").status_code
        == 404
    )
    assert outsider_client.post(move_url(api_key), {}, content_type="application/json").status_code == 404
    assert not M2MApplication.objects.exists()


def test_a_member_may_not_move_someone_elses_key(member_client, key):
    api_key, _ = key
    response = member_client.post(move_url(api_key), {}, content_type="application/json")
    assert response.status_code == 403
    assert member_client.get(f"/orgs/acme/api-keys/{api_key.key_id}/move/").status_code == 403


def test_dashboard_move_confirms_reveals_once_and_links_both_pages(owner_client, key):
    api_key, plaintext = key
    page = owner_client.get(f"/orgs/acme/api-keys/{api_key.key_id}/")
    assert f'href="/orgs/acme/api-keys/{api_key.key_id}/move/"' in page.content.decode()

    confirm = owner_client.get(f"/orgs/acme/api-keys/{api_key.key_id}/move/")
    assert confirm.status_code == 200
    assert "keeps working" in confirm.content.decode()
    assert not M2MApplication.objects.exists()  # a GET changes nothing

    reveal = owner_client.post(f"/orgs/acme/api-keys/{api_key.key_id}/move/", {"name": "exporter (M2M)"})
    assert reveal.status_code == 201
    assert reveal["Cache-Control"] == "no-store"
    application = M2MApplication.objects.get(moved_from_key=api_key)
    html = reveal.content.decode()
    assert application.client_id in html and "ips_" in html and "grant_type=client_credentials" in html
    assert application.name == "exporter (M2M)"

    key_page = owner_client.get(f"/orgs/acme/api-keys/{api_key.key_id}/").content.decode()
    assert "Moved to" in key_page and f"/orgs/acme/apps/{application.pk}/" in key_page
    assert "Move to an M2M application" not in key_page
    app_page = owner_client.get(f"/orgs/acme/apps/{application.pk}/").content.decode()
    assert "Moved from" in app_page and f"/orgs/acme/api-keys/{api_key.key_id}/" in app_page

    # A second POST (a reload) creates nothing and shows no secret.
    again = owner_client.post(f"/orgs/acme/api-keys/{api_key.key_id}/move/")
    assert again.status_code == 200 and "ips_" not in again.content.decode()
    assert M2MApplication.objects.count() == 1

    # The one-click revoke on the key's page.
    revoked = owner_client.post(
        f"/orgs/acme/api-keys/{api_key.key_id}/revoke/",
        {"reason": f"Moved to the M2M application {application.client_id}"},
    )
    assert revoked.status_code == 302
    assert not api_key_verify(plaintext).valid


def test_the_move_page_promises_the_secret_on_the_next_page_only_without_approval(
    owner_client, owner, organization, key
):
    api_key, _plaintext = key
    url = f"/orgs/acme/api-keys/{api_key.key_id}/move/"
    assert "on the next page" in owner_client.get(url).content.decode()

    # Under approval the next page is the pending application's: no secret yet, its owner generates it later.
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    page = owner_client.get(url).content.decode()
    assert "Request the application" in page
    assert "on the next page" not in page, "the move page promises the client secret on the next page"
    moved = owner_client.post(url, {"name": "exporter (M2M)", "justification": "moving to OAuth"})
    application = M2MApplication.objects.get(moved_from_key=api_key)
    assert moved.status_code == 302 and application.status == "pending"


def test_the_inventory_links_the_key_and_its_application(owner_client, owner, key):
    from tokens.clients.moves import api_key_move_to_m2m_app

    api_key, _ = key
    move = api_key_move_to_m2m_app(api_key=api_key, actor=owner)
    application = move.application
    html = owner_client.get("/orgs/acme/inventory/").content.decode()
    assert f'Moved to <a href="/orgs/acme/apps/{application.pk}/">' in html
    assert f'Moved from <a href="/orgs/acme/api-keys/{api_key.key_id}/">' in html
    rows = {r["id"]: r for r in owner_client.get("/api/v1/orgs/acme/inventory/").json()["results"]}
    assert rows[api_key.key_id]["moved_to"] == {"kind": "m2m_app", "id": application.client_id}
    assert rows[application.client_id]["moved_from"] == {"kind": "api_key", "id": api_key.key_id}
