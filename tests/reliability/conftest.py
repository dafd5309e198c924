"""Shared fixtures for tests that run the portal under gunicorn against real PostgreSQL and Redis.

One throwaway PostgreSQL cluster serves the whole session. A template database is migrated
and seeded once (demo organisation, an API key holding api_keys:manage, m2m_apps:manage,
usage:read and orders:read, an M2M application); each test gets its own copy of it, which
PostgreSQL makes in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import psycopg
import pytest
import requests

from tests.support.servers import ROOT, Gunicorn, TempPostgres, postgres_bin_dir

TEMPLATE_DB = "portal_rel2_template"
# Migrate, collect static files (production settings serve them from the manifest), seed the
# demo organisation, and create the credentials every test starts from; print them as JSON.
_SETUP = """
import io, json
import django
django.setup()
from django.core.management import call_command

def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()

run("migrate", "--noinput", "--verbosity=0")
run("collectstatic", "--noinput", "--verbosity=0")
run("seed_demo", "--force")
manager = json.loads(run("create_api_key", "--org=acme", "--name=operations", "--owner=owner@acme.example",
                         "--scopes=api_keys:manage api_keys:verify m2m_apps:manage usage:read orders:read",
                         "--json"))
app = json.loads(run("create_m2m_app", "--org=acme", "--name=reliability", "--owner=owner@acme.example",
                     "--scopes=orders:read", "--json"))
print(json.dumps({"manager_key": manager["key"], "app_id": app["id"],
                  "client_id": app["client_id"], "secret": app["client_secret"]}))
"""
_copies = itertools.count(1)
#: Where this process's servers collect and serve static files: not the checkout's var/staticfiles,
#: which the other test processes' whitenoise scans while collectstatic would be rewriting it.
STATIC_ROOT = os.path.join(tempfile.gettempdir(), f"portal-reliability-static-{os.getpid()}")


class Cluster:
    """The session's PostgreSQL cluster and what was seeded into the template database."""

    def __init__(self, pg: TempPostgres) -> None:
        self.pg = pg
        self.seed: dict = {}

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg.port}/{database}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def running(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def ensure_running(self) -> None:
        if not self.running():
            self.pg.start()


@pytest.fixture(scope="session")
def cluster():
    if postgres_bin_dir() is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries are required")
        pytest.skip("PostgreSQL server binaries not installed")
    pg = TempPostgres()
    pg.start()
    cluster = Cluster(pg)
    try:
        cluster.admin(f'CREATE DATABASE "{TEMPLATE_DB}"')
        tool = Gunicorn(
            {"DATABASE_URL": cluster.url(TEMPLATE_DB), "REDIS_URL": "", "PORTAL_STATIC_ROOT": STATIC_ROOT}
        )
        # One process for all set-up commands: each Django start costs seconds on a busy machine.
        done = subprocess.run(
            [sys.executable, "-c", _SETUP],
            cwd=ROOT,
            env={**tool.env, "DJANGO_SETTINGS_MODULE": "portal.settings"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        cluster.seed = json.loads(done.stdout.strip().splitlines()[-1])
        yield cluster
    finally:
        pg.destroy()
        shutil.rmtree(STATIC_ROOT, ignore_errors=True)


@pytest.fixture
def database_url(cluster):
    """Return the URL of a fresh copy of the seeded template database."""
    cluster.ensure_running()
    name = f"portal_rel2_{os.getpid()}_{next(_copies)}"
    cluster.admin(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    yield cluster.url(name)
    cluster.ensure_running()
    with contextlib.suppress(psycopg.Error):
        cluster.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def seed(cluster):
    """Return the credentials seeded into every copy: manager API key, client id and secret."""
    return dict(cluster.seed)


@pytest.fixture
def http():
    """Return a requests session that never reads proxies or netrc from the environment."""
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


def issue_token(http: requests.Session, base: str, client_id: str, secret: str, timeout: float = 15):
    """POST the client credentials grant; return the response."""
    return http.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=timeout,
    )


#: Behind the TLS-terminating proxy every request arrives marked HTTPS (PORTAL_PROXY_SSL_HEADER=1).
PROXY_ENV = {"PORTAL_PROXY_SSL_HEADER": "1", "PORTAL_TRUSTED_PROXIES": "127.0.0.1"}
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def portal_server(database_url: str, redis_url: str = "", **env: str) -> Gunicorn:
    """Return (not started) the portal under gunicorn, as deployed behind a TLS proxy."""
    return Gunicorn(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PORTAL_STATIC_ROOT": STATIC_ROOT,
            **PROXY_ENV,
            **env,
        }
    )


@contextlib.contextmanager
def running(servers: list[Gunicorn]):
    """Start `servers`; stop every one of them afterwards, whatever happened."""
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def until(check, seconds: float, interval: float = 0.05):
    """Poll `check` until it is truthy or `seconds` have passed since the call; return its last value."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def client(server: Gunicorn) -> requests.Session:
    """Return a requests session for `server` that talks as the proxy would."""
    session = requests.Session()
    session.trust_env = False
    session.headers.update(PROXY_HEADERS)
    return session


def _cookie(response: requests.Response, name: str) -> str:
    value = response.cookies.get(name)
    assert value, f"no {name} cookie set"
    return value


def login(server: Gunicorn, email: str = "owner@acme.example", password: str = "demo-password") -> Browser:
    """Sign in through the login form; return what a browser would send afterwards.

    The cookies are `Secure` and `__Host-` prefixed, so they are sent by hand on this
    loopback (plain HTTP) connection, the way the browser sends them through the proxy.
    """
    session = client(server)
    page = session.get(server.base + "/accounts/login/", timeout=15)
    csrf = _cookie(page, "__Host-csrftoken")
    referer = f"https://127.0.0.1:{server.port}/"
    response = session.post(
        server.base + "/accounts/login/",
        data={"login": email, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Cookie": f"__Host-csrftoken={csrf}", "Referer": referer},
        allow_redirects=False,
        timeout=15,
    )
    assert response.status_code == 302, response.text[:500]
    # Signing in rotates the CSRF secret.
    csrf = response.cookies.get("__Host-csrftoken") or csrf
    sessionid = _cookie(response, "__Host-sessionid")
    return Browser(
        headers={"Cookie": f"__Host-sessionid={sessionid}; __Host-csrftoken={csrf}", "Referer": referer},
        csrf=csrf,
    )


@dataclass(frozen=True)
class Browser:
    """A signed-in browser: the headers it sends and the CSRF token its forms carry."""

    headers: dict
    csrf: str
