"""Fixtures for webhook tests: a real HTTP receiver on 127.0.0.1, endpoints, and a sender run."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest
from django.core.management import call_command
from django.test import Client

from credentials.webhooks.services import webhook_endpoint_create
from credentials.webhooks.signing import verify_signature
from tests.factories import ScopeFactory, make_api_key
from tests.support.servers import LocalHTTPServer

ALL_EVENTS = [
    "created",
    "rotated",
    "revoked",
    "expiring",
    "approved",
    "denied",
    "orphaned",
    "suspended",
    "leaked",
]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver(LocalHTTPServer):
    """A local webhook receiver: records every request; answers with the queued statuses (else 200).

    `with Receiver() as receiver:` starts and stops it.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: deque[int] = deque()
        self.delay = 0.0
        self.redirect_to = ""
        self.body: bytes | None = None  # the response body (default: "received <status>")
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                if receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                with contextlib.suppress(OSError):  # the sender may have given up (timeout test)
                    self.wfile.write(receiver.body if receiver.body is not None else b"received %d" % status)

            def log_message(self, *args):
                pass

        super().__init__(Handler)

    @property
    def url(self) -> str:
        return f"{self.base}/hooks/portal"

    def verified(self, secret: str) -> list[dict]:
        """Return every received payload after checking its signature the documented way."""
        payloads = []
        for request in self.received:
            event_id = verify_signature(body=request.body, headers=request.headers, secret=secret)
            payload = request.json
            assert payload["id"] == event_id
            payloads.append(payload)
        return payloads


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True
    settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS = 1
    settings.PORTAL_WEBHOOK_MAX_ATTEMPTS = 4


@pytest.fixture
def machine(organization, admin_user):
    """Return a client that presents an admin's API key holding `webhooks:manage`."""
    ScopeFactory(name="webhooks:manage")
    _row, key = make_api_key(organization, admin_user, name="automation", scopes=["webhooks:manage"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def make_endpoint(organization, owner, receiver):
    def make(events=None, *, org=None, actor=None, url=None):
        return webhook_endpoint_create(
            organization=org or organization,
            url=url or receiver.url,
            event_types=events or ALL_EVENTS,
            actor=actor or owner,
            description="test receiver",
        )

    return make


def deliver() -> str:
    """Run the sender once, as cron would; return what it printed."""
    import io

    out = io.StringIO()
    call_command("deliver_webhooks", "--once", stdout=out)
    return out.getvalue()
