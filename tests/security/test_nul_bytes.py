"""A NUL character in a URL is a 400 in the endpoint's format, never a 500.

PostgreSQL refuses NUL in text: a `?search=%00` or a key id with one in its path would reach a
query and fail there (CI runs this file on PostgreSQL, where the 500 showed).
"""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

NUL = "\x00"

OWNER_GETS = [
    ("/api/v1/orgs/acme/api-keys/", {"search": NUL}),
    ("/api/v1/orgs/acme/api-keys/", {"owner": NUL}),
    ("/api/v1/orgs/acme/api-keys/", {"environment": NUL}),
    ("/api/v1/orgs/acme/m2m-apps/", {"search": NUL}),
    ("/api/v1/orgs/acme/m2m-apps/", {"owner": NUL}),
    ("/orgs/acme/api-keys/%00/", {}),
    ("/orgs/acme/api-keys/ab%00cd/usage.csv", {}),
    ("/orgs/acme/inventory/", {"q": "a" + NUL}),
]


def _owner_client(owner) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    return client


@pytest.mark.parametrize(("path", "query"), OWNER_GETS, ids=[f"{p}?{'&'.join(q)}" for p, q in OWNER_GETS])
def test_a_nul_in_a_path_or_query_string_is_a_400(owner, scopes, path, query):
    response = _owner_client(owner).get(path, query)
    assert response.status_code == 400, (path, query, response.status_code)
    if path.startswith("/api/"):
        assert response.json() == {"detail": "The URL holds a NUL character.", "code": "url_nul"}
    else:
        assert response.content == b"The URL holds a NUL character."


@pytest.mark.parametrize("action", ["revoke", "rotate", "edit", "owner", "policy", "recertify"])
def test_a_nul_in_a_key_id_posted_to_is_a_400(owner, scopes, action):
    response = _owner_client(owner).post(f"/orgs/acme/api-keys/ab%00cd/{action}/", {"reason": "x"})
    assert response.status_code == 400, (action, response.status_code)


def test_an_oauth_endpoint_answers_with_rfc_6749_json(db):
    response = Client().post("/oauth/token?resource=%00", {"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response["Cache-Control"] == "no-store"


def test_an_escaped_percent_is_not_a_nul(owner, scopes):
    # `%2500` is the three characters "%00", not a NUL: the list answers as for any other search.
    response = _owner_client(owner).get("/api/v1/orgs/acme/api-keys/?search=%2500")
    assert response.status_code == 200, response.content
