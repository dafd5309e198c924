"""HTTPS deliveries: the certificate is verified for the URL's host name (SNI) on the address checked."""

from __future__ import annotations

import datetime
import socket
import ssl
import time
from http.server import BaseHTTPRequestHandler

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from credentials.webhooks.services import webhook_endpoint_ping
from tests.credentials.webhooks.conftest import deliver
from tests.support.servers import LocalHTTPServer, dripping_peer

pytestmark = pytest.mark.django_db


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool, names=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture
def tls_receiver(tmp_path):
    """An HTTPS receiver on 127.0.0.1 with a certificate for `localhost` from a test CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(_name("Test CA"), _name("Test CA"), ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(
        _name("localhost"), ca.subject, key.public_key(), ca_key, ca=False, names=[x509.DNSName("localhost")]
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    seen = {"sni": [], "posts": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen["posts"] += 1
            seen["host"] = self.headers["Host"]
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    context.sni_callback = lambda _sock, name, _ctx: seen["sni"].append(name)
    with LocalHTTPServer(Handler, tls=context) as server:
        yield {
            "url": f"https://localhost:{server.port}/hooks",
            "ca": str(tmp_path / "ca.pem"),
            "seen": seen,
        }


def _ping(make_endpoint, owner, url):
    endpoint, _secret = make_endpoint(url=url)
    return webhook_endpoint_ping(endpoint=endpoint, actor=owner)


def test_an_untrusted_certificate_is_a_tls_failure(owner, make_endpoint, tls_receiver):
    delivery = _ping(make_endpoint, owner, tls_receiver["url"])
    deliver()
    delivery.refresh_from_db()
    assert delivery.state == "failed" and delivery.last_status_code is None
    assert delivery.last_error.startswith("TLS error: CERTIFICATE_VERIFY_FAILED")
    assert tls_receiver["seen"]["posts"] == 0


def test_a_certificate_for_another_name_is_a_tls_failure(owner, make_endpoint, tls_receiver, monkeypatch):
    # Trusted CA, but the URL names 127.0.0.1 and the certificate only `localhost`.
    monkeypatch.setenv("SSL_CERT_FILE", tls_receiver["ca"])
    delivery = _ping(make_endpoint, owner, tls_receiver["url"].replace("localhost", "127.0.0.1"))
    deliver()
    delivery.refresh_from_db()
    assert delivery.state == "failed"
    assert delivery.last_error.startswith("TLS error: CERTIFICATE_VERIFY_FAILED")
    assert tls_receiver["seen"]["posts"] == 0


def test_the_connection_goes_to_the_checked_address_with_the_host_name_for_tls(
    owner, make_endpoint, tls_receiver, monkeypatch
):
    # DNS rebinding: the name resolves to the checked address once, then elsewhere
    # (192.0.2.1, TEST-NET, unreachable). The sender must connect to what it checked, and
    # still verify the certificate for, and send SNI and Host as, the URL's host name.
    monkeypatch.setenv("SSL_CERT_FILE", tls_receiver["ca"])
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, port, *args, **kwargs):
        if host != "localhost":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "192.0.2.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    delivery = _ping(make_endpoint, owner, tls_receiver["url"])
    deliver()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == ("succeeded", 204), delivery.last_error
    assert lookups == ["localhost"]  # resolved once, for the check; never again for the connection
    seen = tls_receiver["seen"]
    assert seen["sni"] == ["localhost"] and seen["host"].startswith("localhost:")


def test_an_unreachable_first_address_falls_back_to_the_next_checked_one(
    owner, make_endpoint, tls_receiver, monkeypatch
):
    # A name with an AAAA and an A record, on a sender without a working IPv6 route (here:
    # nothing listens on [::1]): the IPv4 address is tried next, still pinned and verified.
    monkeypatch.setenv("SSL_CERT_FILE", tls_receiver["ca"])
    real = socket.getaddrinfo

    def dual_stack(host, port, *args, **kwargs):
        if host != "localhost":
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", dual_stack)
    delivery = _ping(make_endpoint, owner, tls_receiver["url"])
    deliver()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == ("succeeded", 204), delivery.last_error
    assert tls_receiver["seen"]["sni"] == ["localhost"]


def test_a_tls_handshake_dripped_byte_by_byte_is_cut_off(owner, make_endpoint):
    # Each byte of the server's "handshake" arrives within the per-read timeout (1 s), but the
    # whole would take 20 s: the handshake is bounded as a whole.
    with dripping_peer(b"\x16\x03\x03\x00\x40" + b"\x02" * 35) as port:
        delivery = _ping(make_endpoint, owner, f"https://localhost:{port}/hooks")
        started = time.monotonic()
        deliver()
        assert time.monotonic() - started < 6
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_error) == ("failed", "Timed out")
