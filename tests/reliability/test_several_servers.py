"""Two app servers sharing PostgreSQL and Redis agree on revocations, secrets and signing keys."""

from __future__ import annotations

import re

import jwt
import pytest

from tests.reliability.conftest import client, issue_token, login, portal_server, running, until

pytestmark = pytest.mark.slow

#: The documented bound for a revocation to reach every server sharing Redis (docs/api-keys.md).
REVOCATION_BOUND_SECONDS = 1.0
#: PORTAL_SIGNING_KEY_REFRESH_SECONDS for these servers (docs/operations.md).
SIGNING_KEY_REFRESH_SECONDS = 1
ISSUER = "http://127.0.0.1"
AUDIENCE = "http://127.0.0.1/api"


def _kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def _validates(token: str, jwks: dict) -> bool:
    key = jwt.PyJWKSet.from_dict(jwks)[_kid(token)]
    claims = jwt.decode(token, key=key, algorithms=["RS256", "ES256"], audience=AUDIENCE, issuer=ISSUER)
    return bool(claims["client_id"])


@pytest.fixture
def pair(database_url, redis_server):
    env = {"PORTAL_SIGNING_KEY_REFRESH_SECONDS": str(SIGNING_KEY_REFRESH_SECONDS)}
    with running([portal_server(database_url, redis_server.url, **env) for _ in range(2)]) as servers:
        yield servers


def test_two_servers_share_revocations_secrets_and_signing_keys(pair, seed):
    a, b = pair
    http_a, http_b = client(a), client(b)
    manage = {"Authorization": f"Bearer {seed['manager_key']}"}
    keys_url = "/api/v1/orgs/acme/api-keys/"

    # --- an API key revoked through A is refused by B within the bound -----------------------
    created = http_a.post(
        a.base + keys_url, json={"name": "shared", "scopes": []}, headers=manage, timeout=15
    )
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["id"]
    as_key = {"X-API-Key": key}
    assert http_b.get(b.base + "/api/v1/whoami", headers=as_key, timeout=15).status_code == 200  # B caches it
    assert http_a.get(a.base + "/api/v1/whoami", headers=as_key, timeout=15).status_code == 200

    revoked = http_a.post(
        a.base + f"{keys_url}{key_id}/revoke/", json={"reason": "test"}, headers=manage, timeout=15
    )
    assert revoked.status_code == 200, revoked.text
    refused_on_b = until(
        lambda: http_b.get(b.base + "/api/v1/whoami", headers=as_key, timeout=15).status_code == 401,
        REVOCATION_BOUND_SECONDS,
    )
    assert refused_on_b, "B still accepted a key revoked through A after the documented bound"

    # --- a key rotated through A: the successor works on B at once ---------------------------
    other = http_a.post(a.base + keys_url, json={"name": "rotating"}, headers=manage, timeout=15).json()
    assert http_b.get(b.base + "/api/v1/whoami", headers={"X-API-Key": other["key"]}, timeout=15).ok
    rotated = http_a.post(
        a.base + f"{keys_url}{other['id']}/rotate/", json={"overlap_hours": 0}, headers=manage, timeout=15
    )
    assert rotated.status_code == 201, rotated.text
    successor = rotated.json()["successor"]["key"]
    assert (
        http_b.get(b.base + "/api/v1/whoami", headers={"X-API-Key": successor}, timeout=15).status_code == 200
    )

    # --- a client secret rotated through A's dashboard works on B at once --------------------
    old_secret = seed["secret"]
    assert issue_token(http_b, b.base, seed["client_id"], old_secret).status_code == 200
    browser = login(a)
    page = http_a.post(
        a.base + f"/orgs/acme/apps/{seed['app_id']}/rotate-secret/",
        data={"overlap_hours": "0", "csrfmiddlewaretoken": browser.csrf},
        headers=browser.headers,
        timeout=15,
    )
    assert page.status_code == 200, page.text[:500]
    new_secret = re.search(r"ips_[0-9A-Za-z]{32}", page.text).group(0)
    assert issue_token(http_b, b.base, seed["client_id"], new_secret).status_code == 200
    assert issue_token(http_b, b.base, seed["client_id"], old_secret).status_code == 401  # overlap 0

    # --- a signing key rotated through A's CLI is used by B within the refresh interval ------
    before_a = issue_token(http_a, a.base, seed["client_id"], new_secret).json()["access_token"]
    before_b = issue_token(http_b, b.base, seed["client_id"], new_secret).json()["access_token"]
    assert _kid(before_a) == _kid(before_b)
    output = a.manage("rotate_signing_key").stdout
    new_kid = re.search(r"Active signing key: (\S+) ", output).group(1)
    assert new_kid != _kid(before_b)

    def signs_with_new_key(http, server):
        def check():
            token = issue_token(http, server.base, seed["client_id"], new_secret).json()["access_token"]
            return token if _kid(token) == new_kid else None

        return check

    # The CLI is a third process: both servers pick the new key up within the refresh interval
    # (plus one request's time), and never go back to the old one.
    after_b = until(signs_with_new_key(http_b, b), SIGNING_KEY_REFRESH_SECONDS + 1.0)
    assert after_b, "B still signed with the retired key after its refresh interval"
    after_a = until(signs_with_new_key(http_a, a), SIGNING_KEY_REFRESH_SECONDS + 1.0)
    assert after_a, "A still signed with the retired key after its refresh interval"
    assert signs_with_new_key(http_b, b)()

    # --- every token validates against either server's JWKS, and on either server -----------
    jwks = [
        http.get(s.base + "/.well-known/jwks.json", timeout=15).json()
        for http, s in ((http_a, a), (http_b, b))
    ]
    for token in (before_a, before_b, after_a, after_b):
        for document in jwks:
            assert _validates(token, document)
        for http, server in ((http_a, a), (http_b, b)):
            whoami = http.get(
                server.base + "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=15
            )
            assert whoami.status_code == 200, whoami.text
