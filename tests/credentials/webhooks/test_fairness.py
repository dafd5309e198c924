"""One organisation's slow or dead receiver must not hold back every other organisation's webhooks.

The sender claimed the oldest due rows whatever their endpoint and sent them one after another,
so three events queued for a receiver that never answers cost every later event three timeouts
(with 20 endpoints × 5 queued test events held 15 s each by a dripping receiver, 25 minutes).
A claim now takes one row per endpoint, and an endpoint that did not answer gets no further
attempt in the same pass (docs/webhooks.md#delivery-and-retries).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler

import pytest
from django.utils import timezone

from credentials.webhooks.delivery import deliveries_claim, deliveries_drain
from credentials.webhooks.models import DeliveryState, WebhookDelivery
from credentials.webhooks.services import webhook_endpoint_create, webhook_endpoint_ping
from tests.support.servers import LocalHTTPServer

pytestmark = pytest.mark.django_db


class Recorder:
    """Arrivals at every local server, in order; the slow ones answer only once released."""

    def __init__(self):
        self.arrivals: list[str] = []
        self.lock = threading.Lock()
        self.released = threading.Event()

    def server(self, name: str, *, slow: bool = False, status: int = 200) -> LocalHTTPServer:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with recorder.lock:
                    recorder.arrivals.append(name)
                if slow:  # far longer than the sender waits (PORTAL_WEBHOOK_TIMEOUT_SECONDS is 1 here)
                    recorder.released.wait(30)
                with contextlib.suppress(OSError):  # the sender gave up long ago
                    self.send_response(status)
                    self.end_headers()

            def log_message(self, *args):
                pass

        return LocalHTTPServer(Handler)


@pytest.fixture
def recorder():
    recorder = Recorder()
    yield recorder
    recorder.released.set()


def _endpoint(organization, actor, url, pings):
    endpoint, _secret = webhook_endpoint_create(
        organization=organization, url=url, event_types=["created"], actor=actor
    )
    return endpoint, [webhook_endpoint_ping(endpoint=endpoint, actor=actor) for _ in range(pings)]


def test_a_slow_receiver_of_one_organisation_does_not_hold_back_another(
    recorder, organization, owner, other_organization, outsider
):
    with recorder.server("slow", slow=True) as slow, recorder.server("healthy") as healthy:
        # Globex points its endpoint at a receiver that does not answer in time, with three test
        # events queued; Acme's event is queued just after.
        _endpoint(other_organization, outsider, f"{slow.base}/hook", pings=3)
        _endpoint(organization, owner, f"{healthy.base}/hook", pings=1)

        deliveries_drain()

    assert "healthy" in recorder.arrivals
    # Acme's event waits at most one of Globex's timeouts, not one per queued Globex event.
    before = recorder.arrivals[: recorder.arrivals.index("healthy")]
    assert before.count("slow") <= 1, recorder.arrivals


def test_a_claim_takes_the_oldest_due_row_of_each_endpoint(owner, make_endpoint, receiver):
    first, _ = make_endpoint(url=f"{receiver.url}/1")
    second, _ = make_endpoint(url=f"{receiver.url}/2")
    first_rows = [webhook_endpoint_ping(endpoint=first, actor=owner) for _ in range(3)]
    second_row = webhook_endpoint_ping(endpoint=second, actor=owner)

    claimed = deliveries_claim(batch_size=10)

    assert [d.pk for d in claimed] == [first_rows[0].pk, second_row.pk]
    # The next claim (this sender's next batch, or another sender's) takes each endpoint's next row.
    assert [d.pk for d in deliveries_claim(batch_size=10)] == [first_rows[1].pk]


@pytest.mark.parametrize("failure", ["timeout", "refused"])
def test_an_endpoint_that_does_not_answer_gets_one_attempt_per_pass(
    recorder, organization, owner, other_organization, outsider, failure
):
    with recorder.server("slow", slow=True) as slow, recorder.server("healthy") as healthy:
        if failure == "timeout":
            url = f"{slow.base}/hook"
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"  # closed before the sender connects
        dead, dead_rows = _endpoint(other_organization, outsider, url, pings=3)
        _alive, alive_rows = _endpoint(organization, owner, f"{healthy.base}/hook", pings=3)
        due_at = {d.pk: d.next_attempt_at for d in dead_rows}

        counts = deliveries_drain()

        # Acme's three events all went out; Globex's endpoint was tried once, its other two events
        # were left for the next pass untouched: no attempt used, the same due time.
        assert recorder.arrivals.count("healthy") == 3
        assert recorder.arrivals.count("slow") == (1 if failure == "timeout" else 0)
        assert (counts["succeeded"], counts["failed"]) == (3, 1)
        assert set(
            WebhookDelivery.objects.filter(pk__in=[d.pk for d in alive_rows]).values_list("state", flat=True)
        ) == {"succeeded"}
        tried, *waiting = WebhookDelivery.objects.filter(endpoint=dead).order_by("id")
        assert (tried.state, tried.attempts) == (DeliveryState.FAILED, 1)
        assert tried.next_attempt_at > timezone.now()  # its back-off, as documented
        for row in waiting:
            assert (row.state, row.attempts, row.leased_until) == (DeliveryState.PENDING, 0, None)
            assert row.next_attempt_at == due_at[row.pk]

        # The next pass tries the endpoint again, once.
        assert deliveries_drain()["failed"] == 1
        assert WebhookDelivery.objects.filter(endpoint=dead, attempts=1).count() == 2


def test_an_endpoint_that_answers_with_an_error_gets_all_its_attempts(recorder, owner, make_endpoint):
    # An answer, even a 500, says the receiver is there: each event is judged on its own.
    with recorder.server("failing", status=500) as failing:
        endpoint, _ = make_endpoint(url=f"{failing.base}/hook")
        for _ in range(3):
            webhook_endpoint_ping(endpoint=endpoint, actor=owner)

        assert deliveries_drain()["failed"] == 3

    assert recorder.arrivals == ["failing"] * 3
