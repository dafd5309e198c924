"""`make run HOST=… PORT=…`: the server listens there and names that address in tokens and emails."""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.servers import ROOT, LocalHTTPServer, ServerProcess, free_port

# Variables a developer's shell or the test run may set; `make run` must work without them.
_CLEARED = {
    "DATABASE_URL",
    "PORTAL_ISSUER",
    "PORTAL_BASE_URL",
    "PORTAL_DEFAULT_AUDIENCE",
    "PORTAL_DEV_SERVER",
}


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED and k != "DEBUG"}
    env.update(overrides)
    return env


def _settings(**env: str) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({n: getattr(s, n) for n in "
        "('PORTAL_ISSUER', 'PORTAL_BASE_URL', 'PORTAL_DEFAULT_AUDIENCE', 'ALLOWED_HOSTS')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(DJANGO_SETTINGS_MODULE="portal.settings", DEBUG="1", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_make_run_passes_host_and_port_to_every_command():
    dry = subprocess.run(
        ["make", "-n", "run", "HOST=127.0.0.1", "PORT=8765"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    commands = [line for line in dry.stdout.splitlines() if "manage.py" in line]
    assert any("runserver 127.0.0.1:8765" in line for line in commands)
    for line in (c for c in commands if "migrate" not in c):  # migrating names no address
        assert "PORTAL_DEV_SERVER=127.0.0.1:8765" in line, line


def test_settings_derive_issuer_audience_and_email_links_from_the_dev_server_address():
    derived = _settings(PORTAL_DEV_SERVER="127.0.0.1:8765")
    assert derived["PORTAL_ISSUER"] == "http://127.0.0.1:8765"
    assert derived["PORTAL_BASE_URL"] == "http://127.0.0.1:8765"
    assert derived["PORTAL_DEFAULT_AUDIENCE"] == "http://127.0.0.1:8765/api"


def test_a_wildcard_bind_is_reached_on_loopback_and_a_named_host_is_allowed():
    assert _settings(PORTAL_DEV_SERVER="0.0.0.0:9000")["PORTAL_ISSUER"] == "http://127.0.0.1:9000"
    assert _settings(PORTAL_DEV_SERVER="[::]:9000")["PORTAL_ISSUER"] == "http://[::1]:9000"
    named = _settings(PORTAL_DEV_SERVER="portal.test:9000")
    assert named["PORTAL_ISSUER"] == "http://portal.test:9000"
    assert "portal.test" in named["ALLOWED_HOSTS"]


def test_explicit_issuer_and_base_url_win_over_the_dev_server_address():
    derived = _settings(
        PORTAL_DEV_SERVER="127.0.0.1:8765",
        PORTAL_ISSUER="http://issuer.test:1234",
        PORTAL_BASE_URL="http://mail.test",
    )
    assert derived["PORTAL_ISSUER"] == "http://issuer.test:1234"
    assert derived["PORTAL_BASE_URL"] == "http://mail.test"


def _get(url: str, *, data: bytes | None = None, headers: dict | None = None) -> dict:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  a local test server
        return json.loads(response.read())


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802  http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append({"type": json.loads(body)["type"], "id": self.headers["Portal-Webhook-Id"]})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


_PING = """
from credentials.webhooks import services
from portal.models import Organization
endpoint, _ = services.webhook_endpoint_create(
    organization=Organization.objects.get(slug="acme"), url="{url}", event_types=["created"], actor=None
)
services.webhook_endpoint_ping(endpoint=endpoint, actor=None)
"""


@pytest.mark.slow
def test_make_run_on_another_port_issues_tokens_for_that_port_and_sends_webhooks(tmp_path):
    """Run `make run`'s own command lines (migrate, seed, runserver + webhook sender) on a free port."""
    port = free_port()
    dry = subprocess.run(
        ["make", "-n", "run", "HOST=127.0.0.1", f"PORT={port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    commands = [line for line in dry.stdout.splitlines() if "manage.py" in line]
    env = _env(DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}")
    for line in commands[:-1]:  # migrate, seed_demo
        subprocess.run(line, shell=True, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)  # noqa: S602
    app = subprocess.run(
        [sys.executable, "manage.py", "create_m2m_app", "--org", "acme", "--name", "make-run test"]
        + ["--owner", "owner@acme.example", "--json"],
        cwd=ROOT,
        env={**env, "DEBUG": "1"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    client = json.loads(app.stdout)
    server = ServerProcess(env, port=port, command=commands[-1] + " --noreload")  # the Makefile's own line
    server.start(timeout=60)
    base = server.base
    try:
        metadata = _get(f"{base}/.well-known/oauth-authorization-server")
        assert metadata["issuer"] == base
        assert metadata["jwks_uri"] == f"{base}/.well-known/jwks.json"
        basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
        token = _get(
            f"{base}/oauth/token",
            data=b"grant_type=client_credentials",
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        payload = token["access_token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["iss"] == base

        # "Send test event" reaches a receiver without anyone starting a worker by hand.
        with LocalHTTPServer(_Receiver) as receiver:
            url = f"{receiver.base}/hook"
            subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", _PING.format(url=url)],
                cwd=ROOT,
                env={**env, "DEBUG": "1"},
                check=True,
                capture_output=True,
                timeout=60,
            )
            deadline = time.monotonic() + 30
            while not _Receiver.received and time.monotonic() < deadline:
                time.sleep(0.2)
            assert [event["type"] for event in _Receiver.received] == ["webhook.ping"]
    finally:
        server.stop()
