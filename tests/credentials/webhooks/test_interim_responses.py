"""A receiver's interim 1xx answer is not its answer (RFC 9110 §15.2): the final 2xx is.

http.client reads past `100 Continue` only, so a receiver (or its proxy) sending `103 Early Hints`
before its `200 OK` had the delivery recorded as failed with status 103, re-sent up to 11 more
times and finally "gave up", with a warning on the dashboard.
"""

from __future__ import annotations

import socket
import threading

import pytest

from credentials.webhooks.services import webhook_endpoint_ping
from tests.credentials.webhooks.conftest import deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def early_hints_receiver():
    """A receiver that sends `103 Early Hints`, then its real answer, `200 OK`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    requests = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                requests.append(conn.recv(65536))
                conn.sendall(
                    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                )

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], requests
    listener.close()


def test_a_2xx_after_an_interim_1xx_answer_is_a_success(owner, make_endpoint, early_hints_receiver):
    port, requests = early_hints_receiver
    endpoint, _ = make_endpoint(url=f"http://127.0.0.1:{port}/hook")
    delivery = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    deliver()
    delivery.refresh_from_db()
    assert len(requests) == 1
    # docs/webhooks.md: "Any 2xx answer is a success".
    assert (delivery.state, delivery.last_status_code, delivery.response_excerpt) == ("succeeded", 200, "ok")
