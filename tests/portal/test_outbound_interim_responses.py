"""Outbound requests take the final answer, reading past interim 1xx ones (RFC 9110 §15.2), a bounded number.

`portal.infra.outbound.exchange` (webhook deliveries, federation issuers' keys) returned
`103 Early Hints` as the answer: http.client reads past `100 Continue` only.
"""

from __future__ import annotations

import socket
import threading

import pytest

from portal.infra import outbound

FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone"


@pytest.fixture
def peer():
    """Start a loopback peer that reads the request and sends the bytes given; return its port."""
    listeners = []

    def start(answer: bytes) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listeners.append(listener)

        def serve():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

        threading.Thread(target=serve, daemon=True).start()
        return listener.getsockname()[1]

    yield start
    for listener in listeners:
        listener.close()


def _exchange(port: int) -> outbound.Response:
    destination = outbound.parse_url(f"http://127.0.0.1:{port}/hook", allow_insecure_localhost=True)
    return outbound.exchange("POST", destination, ["127.0.0.1"], timeout=2, max_bytes=100, body=b"{}")


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n",
        b"HTTP/1.1 199 Misc\r\nX-Anything: 1\r\nX-Else: 2\r\n\r\n",  # any 1xx, known or not
    ],
)
def test_the_final_answer_comes_after_interim_ones(peer, interim):
    response = _exchange(peer(interim + FINAL))
    assert (response.status, response.body) == (200, b"done")


def test_switching_protocols_is_a_final_answer(peer):
    # Nothing asked for an upgrade: 101 is the answer (not a success), not something to wait past.
    port = peer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    assert _exchange(port).status == 101


def test_endless_interim_answers_are_refused(peer):
    interim = b"HTTP/1.1 103 Early Hints\r\n\r\n" * (outbound.MAX_INTERIM_RESPONSES + 1)
    with pytest.raises(outbound.TooManyInterimResponses):
        _exchange(peer(interim + FINAL))
    # Up to the bound, they are read past.
    interim = b"HTTP/1.1 103 Early Hints\r\n\r\n" * outbound.MAX_INTERIM_RESPONSES
    assert _exchange(peer(interim + FINAL)).status == 200
