"""A write to a REST URL without its trailing slash is refused in JSON, never silently dropped.

Django's APPEND_SLASH answered a POST/PATCH to `/api/v1/orgs/acme/api-keys/<id>/revoke` (no
slash) with a 301 and an empty body: the key was not revoked, curl printed nothing and exited 0,
and a client that followed the 301 re-sent it as a GET (RFC 9110 §15.4.2). With DEBUG on (`make
run`) the same request was an HTML 500 (Django's RuntimeError). portal.infra.common answers it
with a JSON 404 `trailing_slash` naming the URL to use; GET and HEAD, and pages, keep the 301.
"""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.governance.models import CredentialState

pytestmark = pytest.mark.django_db


def _owner_client(owner) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    return client


def _assert_trailing_slash_refusal(response, path: str) -> None:
    assert response.status_code == 404, (response.status_code, response.get("Location"))
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": f"No such URL: use {path}/ (with a trailing slash).",
        "code": "trailing_slash",
    }


def test_a_revoke_without_the_trailing_slash_is_refused_in_json(owner, make_key):
    key, _ = make_key(name="leaked")
    path = f"/api/v1/orgs/acme/api-keys/{key.key_id}/revoke"
    response = _owner_client(owner).post(path, {"reason": "leaked"}, "application/json")
    _assert_trailing_slash_refusal(response, path)
    key.refresh_from_db()
    assert key.status == CredentialState.ACTIVE  # refused, not done: the client knows to retry


def test_a_patch_without_the_trailing_slash_in_development_is_the_same_json_404(settings, owner, make_key):
    settings.DEBUG = True  # `make run`: development mode, where Django raised a RuntimeError (500)
    key, _ = make_key(name="job")
    path = f"/api/v1/orgs/acme/api-keys/{key.key_id}"
    response = _owner_client(owner).patch(path, {"name": "renamed"}, "application/json")
    _assert_trailing_slash_refusal(response, path)
    assert ApiKey.objects.get(pk=key.pk).name == "job"


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_other_writes_without_the_trailing_slash_are_refused_alike(owner, make_key, method):
    key, _ = make_key()
    path = f"/api/v1/orgs/acme/api-keys/{key.key_id}"
    _assert_trailing_slash_refusal(_owner_client(owner).generic(method, path), path)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_without_the_trailing_slash_still_redirects(owner, make_key, method):
    key, _ = make_key()
    path = f"/api/v1/orgs/acme/api-keys/{key.key_id}"
    response = _owner_client(owner).generic(method, f"{path}?x=1")
    assert response.status_code == 301
    assert response["Location"] == f"{path}/?x=1"


def test_a_page_write_without_the_trailing_slash_keeps_djangos_redirect(owner):
    response = _owner_client(owner).post("/orgs/acme/members/invite", {"email": "new@acme.test"})
    assert response.status_code == 301
    assert response["Location"] == "/orgs/acme/members/invite/"


def test_the_token_endpoint_which_has_no_slash_is_unaffected():
    response = Client().post("/oauth/token", {"grant_type": "client_credentials", "client_id": "nobody"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
