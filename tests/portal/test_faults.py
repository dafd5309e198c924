"""Faults: with PostgreSQL down the portal answers 503 quickly and recovers by itself."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.support.servers import Gunicorn, TempPostgres, postgres_bin_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def temp_postgres():
    if postgres_bin_dir() is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries are required")
        pytest.skip("PostgreSQL server binaries not installed")
    pg = TempPostgres()
    pg.start()
    yield pg
    pg.destroy()


def test_healthz_answers_503_while_postgres_is_down_and_recovers(temp_postgres):
    server = Gunicorn({"DATABASE_URL": temp_postgres.url, "PORTAL_DB_CONNECT_TIMEOUT": "2"})
    server.manage("migrate", "--noinput")
    server.start()
    try:
        status, body, _ = server.get("/healthz")
        assert status == 200 and json.loads(body)["database"] == "ok"

        temp_postgres.stop()
        # A hang would raise in the client (timeout): the answer must come from the connect timeout.
        status, body, headers = server.get("/healthz", timeout=20)
        assert status == 503
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"status": "unavailable", "database": "down"}
        status, body, _ = server.get("/accounts/login/", timeout=20)
        assert b"Traceback" not in body

        temp_postgres.start()
        deadline = time.monotonic() + 15
        while True:
            status, body, _ = server.get("/healthz")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status == 200, body
    finally:
        server.stop()
