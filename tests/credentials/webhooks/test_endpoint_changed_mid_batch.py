"""An endpoint changed after the sender claimed its rows gets what it is now, not what it was.

The sender used the endpoint loaded when it claimed the batch: one disabled or deleted meanwhile
(its domain lapsed, say) still got the event, and one whose secret was rotated with no overlap got
it signed with the old secret, which the customer had just stopped trusting. Each attempt now
reads the endpoint afresh (docs/webhooks.md#delivery-and-retries).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

import pytest
from django.db import connection

from credentials.webhooks.delivery import deliveries_drain
from credentials.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from credentials.webhooks.services import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_ping,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)
from credentials.webhooks.signing import SignatureError, verify_signature
from tests.support.servers import LocalHTTPServer

# The change is made from the first receiver's thread, on its own connection, while the sender
# is busy: committed data, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def _server(on_request=None) -> LocalHTTPServer:
    """Return a receiver recording (body, headers) of each request; `on_request` runs before it answers."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((body, dict(self.headers.items())))
            if on_request is not None:
                on_request()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = LocalHTTPServer(Handler)
    server.received = received
    return server


def _once(change):
    """Return a callback applying `change` to the endpoint "second", once, on its own connection."""
    done = threading.Event()

    def callback():
        if done.is_set():
            return
        try:
            change(WebhookEndpoint.objects.get(description="second"))
        finally:
            done.set()
            connection.close()

    callback.done = done
    return callback


def _two_endpoints_with_a_test_event(organization, owner, first_server, second_server):
    secrets = {}
    for name, server in (("first", first_server), ("second", second_server)):
        endpoint, secrets[name] = webhook_endpoint_create(
            organization=organization,
            url=f"{server.base}/{name}",
            event_types=["created"],
            actor=owner,
            description=name,
        )
        webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    return secrets


def test_an_endpoint_disabled_while_the_batch_is_under_way_gets_nothing_and_keeps_its_event(
    organization, owner
):
    disable = _once(lambda second: webhook_endpoint_update(endpoint=second, actor=owner, active=False))
    with _server(disable) as first_server, _server() as second_server:
        _two_endpoints_with_a_test_event(organization, owner, first_server, second_server)

        counts = deliveries_drain()

        assert disable.done.is_set() and len(first_server.received) == 1
        assert second_server.received == []
        assert counts["succeeded"] == 1
        # "Already queued ones wait until it is enabled": unattempted, not held by a lease.
        waiting = WebhookDelivery.objects.get(endpoint__description="second")
        assert (waiting.state, waiting.attempts, waiting.leased_until) == (DeliveryState.PENDING, 0, None)

        webhook_endpoint_update(endpoint=waiting.endpoint, actor=owner, active=True)
        deliveries_drain()
        assert len(second_server.received) == 1


def test_an_endpoint_deleted_while_the_batch_is_under_way_gets_nothing(organization, owner):
    delete = _once(lambda second: webhook_endpoint_delete(endpoint=second, actor=owner))
    with _server(delete) as first_server, _server() as second_server:
        _two_endpoints_with_a_test_event(organization, owner, first_server, second_server)

        counts = deliveries_drain()

        assert delete.done.is_set() and len(first_server.received) == 1
        assert second_server.received == []
        assert counts["succeeded"] == 1 and sum(counts.values()) == 1
    assert WebhookDelivery.objects.count() == 1  # the deleted endpoint's row went with it


def test_a_secret_rotated_without_overlap_while_the_batch_is_under_way_no_longer_signs(organization, owner):
    new_secret = []
    rotate = _once(
        lambda second: new_secret.append(
            webhook_endpoint_rotate_secret(endpoint=second, actor=owner, overlap_hours=0)[1]
        )
    )
    with _server(rotate) as first_server, _server() as second_server:
        secrets = _two_endpoints_with_a_test_event(organization, owner, first_server, second_server)

        deliveries_drain()

    ((body, headers),) = second_server.received
    # "Overlap 0 stops the old secret at once": the receiver now holds only the new one.
    verify_signature(body=body, headers=headers, secret=new_secret[0])
    with pytest.raises(SignatureError):
        verify_signature(body=body, headers=headers, secret=secrets["second"])
