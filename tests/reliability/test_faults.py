"""Faults: PostgreSQL down means a quick 503 and recovery on its own; Redis down means no harm."""

from __future__ import annotations

import json
import time

import pytest

from tests.reliability.conftest import client, issue_token, login, portal_server

pytestmark = pytest.mark.slow

# Every request below has a client timeout: a hang fails the test instead of passing late.
TIMEOUT = 20


def _poll(check, seconds: float = 20.0):
    """Call `check` until it returns a truthy value or `seconds` pass; return the last value."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def _json_503(response) -> dict:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers.get("Retry-After")
    assert "Traceback" not in response.text
    return response.json()


def test_postgres_outage_answers_503_everywhere_and_recovers(cluster, database_url, seed):
    server = portal_server(database_url, PORTAL_DB_CONNECT_TIMEOUT="2")
    server.start()
    http = client(server)
    try:
        base = server.base
        status, body, _ = server.get("/healthz")
        assert status == 200 and json.loads(body)["database"] == "ok"
        token = issue_token(http, base, seed["client_id"], seed["secret"])
        assert token.status_code == 200, token.text
        jwt = token.json()["access_token"]
        session = login(server)
        assert http.get(base + "/orgs/acme/", headers=session.headers, timeout=TIMEOUT).status_code == 200

        cluster.pg.stop()

        status, body, headers = server.get("/healthz", timeout=TIMEOUT)
        assert status == 503
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"status": "unavailable", "database": "down"}

        by_key = http.get(
            base + "/api/v1/whoami", headers={"X-API-Key": seed["manager_key"]}, timeout=TIMEOUT
        )
        assert _json_503(by_key)["detail"]
        by_token = http.get(
            base + "/api/v1/whoami", headers={"Authorization": f"Bearer {jwt}"}, timeout=TIMEOUT
        )
        assert _json_503(by_token)["detail"]
        listing = http.get(
            base + "/api/v1/orgs/acme/api-keys/",
            headers={"Authorization": f"Bearer {seed['manager_key']}"},
            timeout=TIMEOUT,
        )
        assert _json_503(listing)["detail"]
        refused = issue_token(http, base, seed["client_id"], seed["secret"], timeout=TIMEOUT)
        assert _json_503(refused)["error"] == "temporarily_unavailable"
        assert refused.headers["Cache-Control"] == "no-store"

        page = http.get(base + "/orgs/acme/", headers=session.headers, timeout=TIMEOUT)
        assert page.status_code == 503
        assert page.headers["Content-Type"].startswith("text/html")
        assert "Temporarily unavailable" in page.text and "Traceback" not in page.text
        login_page = http.get(base + "/accounts/login/", timeout=TIMEOUT)
        # The sign-in form itself needs no database.
        assert login_page.status_code == 200 and "Traceback" not in login_page.text

        cluster.pg.start()
        assert _poll(lambda: server.get("/healthz")[0] == 200)
        # No restart: the same processes reconnect by themselves.
        assert (
            http.get(
                base + "/api/v1/whoami", headers={"X-API-Key": seed["manager_key"]}, timeout=TIMEOUT
            ).status_code
            == 200
        )
        assert (
            http.get(
                base + "/api/v1/whoami", headers={"Authorization": f"Bearer {jwt}"}, timeout=TIMEOUT
            ).status_code
            == 200
        )
        assert issue_token(http, base, seed["client_id"], seed["secret"]).status_code == 200
        assert http.get(base + "/orgs/acme/", headers=session.headers, timeout=TIMEOUT).status_code == 200
        logs = server.log_text()
        assert "database unavailable" in logs
        assert "Traceback" not in logs  # an outage is a warning line, not a crash
    finally:
        cluster.ensure_running()
        server.stop()


def test_redis_outage_degrades_to_the_database(database_url, seed, redis_server):
    server = portal_server(database_url, redis_server.url)
    server.start()
    http = client(server)
    manager = {"X-API-Key": seed["manager_key"]}
    try:
        base = server.base

        def works() -> None:
            token = issue_token(http, base, seed["client_id"], seed["secret"], timeout=TIMEOUT)
            assert token.status_code == 200, token.text
            jwt = token.json()["access_token"]
            whoami = http.get(
                base + "/api/v1/whoami", headers={"Authorization": f"Bearer {jwt}"}, timeout=TIMEOUT
            )
            assert whoami.status_code == 200, whoami.text
            assert http.get(base + "/api/v1/whoami", headers=manager, timeout=TIMEOUT).status_code == 200
            verify = http.post(
                base + "/api/v1/keys/verify",
                json={"key": seed["manager_key"]},
                headers=manager,
                timeout=TIMEOUT,
            )
            assert verify.status_code == 200 and verify.json()["valid"] is True, verify.text

        works()
        redis_server.stop()
        works()
        works()  # the back-off path as well as the first failure
        logs = server.log_text()
        assert "cache unavailable" in logs
        assert "Traceback" not in logs

        redis_server.start()  # same port: the portal uses it again without a restart
        assert _poll(redis_server.ping)
        works()
    finally:
        server.stop()
