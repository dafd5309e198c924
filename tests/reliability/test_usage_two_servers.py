"""Usage metering and runtime policy hold across two app servers sharing PostgreSQL and Redis (issue 18).

- Counts are exact under concurrent load split over two servers (each with two workers): every
  verification and token request is counted once, by outcome, in the usage API after `rollup_usage`.
- A change of a credential's allowlist or rate limit made through one server is enforced by the
  other within 1 s, the bound docs/api-keys.md gives for revocations.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from credentials.api_keys import keys
from tests.reliability.conftest import PROXY_HEADERS, client, issue_token, portal_server, running, until
from tests.support.clock import wait_for_window_room

# Real servers on real PostgreSQL and Redis: skipped on SQLite (`make test`), run in CI.
pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: The documented bound for a policy change to reach every server sharing Redis (issue 18, docs/api-keys.md).
PROPAGATION_BOUND_SECONDS = 1.0
#: The default flush interval (5 s): the servers still hold their last counts when the load ends,
#: and a graceful stop must flush them (credentials.usage), so nothing waits for an interval.
SERVER_ENV: dict[str, str] = {}
INSIDE, OUTSIDE = "203.0.113.7", "198.51.100.9"
KEYS_URL = "/api/v1/orgs/acme/api-keys/"
APPS_URL = "/api/v1/orgs/acme/m2m-apps/"


def _server(database_url: str, redis_url: str):
    server = portal_server(database_url, redis_url, **SERVER_ENV)
    server.workers = 2  # two servers, four processes counting into the same Redis
    return server


@pytest.fixture
def pair(database_url, redis_server):
    with running([_server(database_url, redis_server.url) for _ in range(2)]) as servers:
        yield servers


class Admin:
    """The seeded operations key acting for the organisation's owner over REST (keys, applications, usage)."""

    def __init__(self, server, seed) -> None:
        self.http = client(server)
        self.server = server
        self.headers = {"Authorization": f"Bearer {seed['manager_key']}"}

    def post(self, path: str, **body) -> dict:
        response = self.http.post(self.server.base + path, json=body, headers=self.headers, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def patch(self, path: str, **body) -> None:
        response = self.http.patch(self.server.base + path, json=body, headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text


_local = threading.local()


def _session() -> requests.Session:
    """Return this thread's session (a `requests.Session` is not shared between threads)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        _local.session.trust_env = False
        _local.session.headers.update(PROXY_HEADERS)
    return _local.session


def _whoami(base: str, key: str, ip: str) -> int:
    return (
        _session()
        .get(f"{base}/api/v1/whoami", headers={"X-API-Key": key, "X-Forwarded-For": ip}, timeout=60)
        .status_code
    )


def _token(base: str, client_id: str, secret: str, ip: str) -> int:
    return (
        _session()
        .post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
            headers={"X-Forwarded-For": ip},
            timeout=60,
        )
        .status_code
    )


def test_usage_counts_are_exact_under_concurrent_load_on_two_servers(pair, seed, database_url, redis_server):
    a, b = pair
    admin = Admin(a, seed)
    key = admin.post(KEYS_URL, name="metered", scopes=[], allowed_ips=[f"{INSIDE}/32"])
    limited = admin.post(
        KEYS_URL, name="limited", scopes=[], rate_limit={"requests": 10, "per_seconds": 86400}
    )
    app = admin.post(APPS_URL, name="metered app", scopes=["orders:read"], allowed_ips=[f"{INSIDE}/32"])
    wrong_key = keys.generate(key["environment"], key_id=key["id"])[1]
    client_id, secret = app["client_id"], app["client_secret"]

    # What each call is expected to be counted as, and the status it must answer with.
    plan = (
        [("key", "valid", lambda base: _whoami(base, key["key"], INSIDE), 200)] * 60
        + [("key", "invalid_secret", lambda base: _whoami(base, wrong_key, INSIDE), 401)] * 10
        + [("key", "ip_denied", lambda base: _whoami(base, key["key"], OUTSIDE), 403)] * 10
        + [("app", "valid", lambda base: _token(base, client_id, secret, INSIDE), 200)] * 16
        + [("app", "invalid_secret", lambda base: _token(base, client_id, "ips_wrong", INSIDE), 401)] * 8
        + [("app", "ip_denied", lambda base: _token(base, client_id, secret, OUTSIDE), 400)] * 8
        + [("limited", "by the limit", lambda base: _whoami(base, limited["key"], INSIDE), None)] * 16
    )
    servers = itertools.cycle([a.base, b.base])
    jobs = [(credential, outcome, call, status, next(servers)) for credential, outcome, call, status in plan]
    window = int(time.time() // 86400)

    def run(job):
        credential, outcome, call, status, base = job
        return credential, outcome, status, call(base)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(run, jobs))
    same_window = int(time.time() // 86400) == window
    for credential, outcome, status, got in answers:
        if status is not None:
            assert got == status, (credential, outcome, got)
    limited_statuses = Counter(got for credential, _o, _s, got in answers if credential == "limited")
    assert set(limited_statuses) <= {200, 429}
    if same_window:  # the limit's fixed window is a UTC day: 10 pass, whichever server they reach
        assert limited_statuses == {200: 10, 429: 6}, limited_statuses

    # Graceful stops end every request (and its flush to Redis); the roll-up runs as a third process.
    for server in pair:
        server.stop()
    a.manage("rollup_usage")
    with _server(database_url, redis_server.url) as reader:
        response = client(reader).get(
            reader.base + "/api/v1/orgs/acme/usage/",
            params={"credential": [key["id"], app["client_id"], limited["id"]], "granularity": "minute"},
            headers=admin.headers,
            timeout=30,
        )
    assert response.status_code == 200, response.text
    totals = {entry["credential"]: entry["totals"] for entry in response.json()["credentials"]}
    nonzero = {ref: {o: n for o, n in counts.items() if n} for ref, counts in totals.items()}
    expected = {
        key["id"]: {"valid": 60, "invalid_secret": 10, "ip_denied": 10},
        app["client_id"]: {"valid": 16, "invalid_secret": 8, "ip_denied": 8},
        limited["id"]: {"valid": limited_statuses[200], "rate_limited": limited_statuses[429]},
    }
    assert nonzero == expected


def _within_bound(check) -> bool:
    """Return whether `check` holds within the bound, polled from now."""
    return bool(until(check, PROPAGATION_BOUND_SECONDS, interval=0.02))


def test_a_policy_change_on_one_server_is_enforced_by_the_other_within_a_second(pair, seed):
    # The rate limits set below count in fixed one-hour windows, in the servers' processes, where
    # no test clock reaches: an hour ending between the request that spends the budget and the
    # one that must be refused would start the count again. Start with at least a minute of it left.
    wait_for_window_room(3600, needed=60)
    a, b = pair
    admin = Admin(a, seed)
    http_b = client(b)

    def whoami_b(key: str) -> requests.Response:
        return http_b.get(
            b.base + "/api/v1/whoami", headers={"X-API-Key": key, "X-Forwarded-For": INSIDE}, timeout=15
        )

    def token_b(application: dict) -> requests.Response:
        return http_b.post(
            b.base + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(application["client_id"], application["client_secret"]),
            headers={"X-Forwarded-For": INSIDE},
            timeout=15,
        )

    # --- an API key's allowlist changed through A: B answers 403 ip_denied ---------------------
    key = admin.post(KEYS_URL, name="fenced", scopes=[])
    assert whoami_b(key["key"]).status_code == 200  # B has it cached
    admin.patch(f"{KEYS_URL}{key['id']}/", allowed_ips=["192.0.2.0/24"])
    assert _within_bound(lambda: whoami_b(key["key"]).status_code == 403), (
        "B still accepted the key from outside its new allowlist after 1 s"
    )
    assert whoami_b(key["key"]).json()["code"] == "ip_denied"

    # --- an API key's rate limit set through A: B answers 429 ------------------------------------
    other = admin.post(KEYS_URL, name="budgeted", scopes=[])
    assert whoami_b(other["key"]).status_code == 200
    admin.patch(f"{KEYS_URL}{other['id']}/", rate_limit={"requests": 1, "per_seconds": 3600})
    assert _within_bound(lambda: whoami_b(other["key"]).status_code == 429), (
        "B did not enforce the key's new rate limit within 1 s"
    )
    refused = whoami_b(other["key"])
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert refused.headers["Retry-After"] and refused.headers["RateLimit-Policy"] == '"default";q=1;w=3600'

    # --- an M2M application's allowlist changed through A: B refuses tokens (RFC 6749 §5.2) -------
    app = admin.post(APPS_URL, name="fenced app", scopes=["orders:read"])
    assert token_b(app).status_code == 200
    admin.patch(f"{APPS_URL}{app['id']}/", allowed_ips=["192.0.2.0/24"])
    assert _within_bound(lambda: token_b(app).status_code == 400), (
        "B still issued tokens to the application outside its new allowlist after 1 s"
    )
    assert token_b(app).json()["error"] == "unauthorized_client"

    # --- and its rate limit ------------------------------------------------------------------------
    budgeted = admin.post(APPS_URL, name="budgeted app", scopes=["orders:read"])
    assert issue_token(http_b, b.base, budgeted["client_id"], budgeted["client_secret"]).status_code == 200
    admin.patch(f"{APPS_URL}{budgeted['id']}/", rate_limit={"requests": 1, "per_seconds": 3600})
    assert _within_bound(lambda: token_b(budgeted).status_code == 429), (
        "B did not enforce the application's new rate limit within 1 s"
    )
