"""Outbound HTTP to places customers chose, safe from SSRF: HTTPS to public addresses, pinned, bounded.

Webhook deliveries (`credentials.webhooks`) and issuer key fetches for workload identity
federation (`tokens.federation.trust`) both make the portal send requests to a URL a customer
typed, so neither may become a way into the portal's own network. The URL is checked
(scheme, no credentials, no private IP literal), the host is resolved with a bounded lookup
and every answer must be public; the connection then goes to an address that was checked,
so DNS cannot change in between, and TLS still verifies the certificate for the URL's host.
A watchdog bounds the whole exchange and the body read is capped; interim 1xx answers are read
past to the final one. Loopback over plain http only when the caller's development setting
allows it (`allow_insecure_localhost`).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: A DNS name: dot-separated labels of letters, digits, `-` (not at either end) and `_`.
_HOST_NAME = re.compile(
    r"(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?"
)


@dataclass(frozen=True)
class Destination:
    """A checked URL, split into what the sender needs."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent on the request line


def parse_url(url: str, *, allow_insecure_localhost: bool, purpose: str = "Requests are sent") -> Destination:
    """Check an outbound URL's shape; return its parts or raise ValidationError (no DNS lookup).

    `purpose` starts the HTTPS-only message ("Webhooks are sent", "Issuer keys are fetched").
    """
    url = (url or "").strip()
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise ValidationError(
            "Use a URL without spaces or other special characters (percent-encode them; punycode for "
            "the host name).",
            code="invalid",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError("Enter a valid URL.", code="invalid") from None
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("http", "https"):
        raise ValidationError("Enter an https:// URL.", code="scheme")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("The URL must not contain a user name or password.", code="userinfo")
    if parts.fragment:
        raise ValidationError("The URL must not contain a #fragment.", code="fragment")
    local = host in LOCAL_HOSTS and allow_insecure_localhost
    if parts.scheme != "https" and not local:
        raise ValidationError(f"{purpose} over HTTPS only: enter an https:// URL.", code="scheme")
    try:
        literal = ipaddress.ip_address(host.rstrip("."))
    except ValueError:
        literal = None
    if literal is None and not _HOST_NAME.fullmatch(host):
        raise ValidationError("Enter a valid host name.", code="invalid")
    if literal is None and _legacy_ipv4(host):
        # `2130706433`, `0x7f.1`, `0177.0.0.1`: the resolver reads these as IPv4 addresses
        # (127.0.0.1 here); refuse the ambiguous spellings rather than guess what they mean.
        raise ValidationError(
            "Write an IP address in the usual dotted form (e.g. 203.0.113.7), or use a host name.",
            code="invalid",
        )
    if literal is not None and not local and not _public(literal):
        raise ValidationError("The URL must point to a public address.", code="private")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Destination(
        scheme=parts.scheme, host=host, port=port or (443 if parts.scheme == "https" else 80), path=path
    )


def _legacy_ipv4(host: str) -> bool:
    """Return whether the C resolver would read `host` as a numeric IPv4 address (inet_aton forms)."""
    try:
        socket.inet_aton(host.rstrip("."))
    except (OSError, ValueError):
        return False
    return True


#: NAT64's well-known prefix (RFC 6052): the packets end up at the IPv4 address in the last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: The local-use NAT64 prefix (RFC 8215): where the IPv4 address sits is the operator's choice.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


#: Special-purpose ranges that `is_global` calls global before CPython 3.11.9 / 3.12.4: IETF
#: protocol assignments (192.0.0.0/24; 192.0.0.192 is a cloud metadata service), refused whole
#: (its two anycast addresses serve no webhook), and IPv6 documentation (3fff::/20, RFC 9637).
_NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("3fff::/20"))


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Return whether `address` is a public unicast address (IPv4 inside IPv6 judged as IPv4)."""
    if any(address in network for network in _NOT_GLOBAL):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _public(embedded)
        # Only global unicast (2000::/3): not IPv4-compatible `::a.b.c.d`, IPv4-translated
        # `::ffff:0:a.b.c.d`, site-local `fec0::/10` or other reserved space, which
        # `is_global` lets through.
        if address.is_reserved or address.is_site_local:
            return False
    return address.is_global and not address.is_multicast


def _getaddrinfo(host: str, port: int, timeout: float) -> list:
    """Return `socket.getaddrinfo(host, port)` or raise TimeoutError after `timeout` seconds.

    The C resolver takes no timeout (a slow or silent DNS server can hold it for tens of
    seconds), so it runs in a daemon thread; a lookup that overruns is abandoned and finishes
    on its own, without holding the sender.
    """
    outcome: dict = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=lookup, name="outbound-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    return outcome["infos"]


def resolve(destination: Destination, *, allow_insecure_localhost: bool, timeout: float) -> list[str]:
    """Return the addresses to connect to, in the resolver's order, or raise ValidationError.

    Every address the name resolves to must be public (an attacker controlling DNS could
    otherwise mix a private one in). The lookup is bounded by `timeout` seconds.
    """
    local = destination.host in LOCAL_HOSTS and allow_insecure_localhost
    try:
        infos = _getaddrinfo(destination.host, destination.port, timeout)
    except TimeoutError:
        raise ValidationError("The host name did not resolve in time.", code="dns_timeout") from None
    except (OSError, UnicodeError):
        raise ValidationError("The host name does not resolve.", code="dns") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise ValidationError("The host name does not resolve.", code="dns")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not (_public(address) or (local and address.is_loopback)):
            raise ValidationError("The host resolves to a non-public address.", code="private")
    return list(dict.fromkeys(addresses))


def _connect(addresses: list[str], port: int, timeout: float, deadline: float) -> socket.socket:
    """Return a socket connected to the first checked address that answers (IPv6 may be unroutable).

    Every try ends by `deadline` (time.monotonic()), so several addresses cannot outlast the watchdog.
    """
    error: OSError | None = None
    for address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        try:
            return socket.create_connection((address, port), min(timeout, left))
        except OSError as exc:
            error = exc
    raise error or OSError("no address")


def _within(deadline: float) -> None:
    # The watchdog cuts `self.sock`: one that fired before the socket was set cut nothing.
    if time.monotonic() >= deadline:
        raise TimeoutError


#: Interim (1xx) answers read past before the final one; a server sending more is refused.
MAX_INTERIM_RESPONSES = 10


class TooManyInterimResponses(http.client.HTTPException):
    """The server sent more than MAX_INTERIM_RESPONSES interim (1xx) answers before its final one."""


class _FinalResponse(http.client.HTTPResponse):
    """The final answer: interim 1xx answers before it are read past (RFC 9110 §15.2).

    http.client skips only `100 Continue` and would take e.g. `103 Early Hints` for the answer.
    `101 Switching Protocols` is final (no upgrade was asked for, so it is just not a success).
    The watchdog bounds the time a server can spend on interim answers; this bounds their number.
    """

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(MAX_INTERIM_RESPONSES + 1):
            version, status, reason = super()._read_status()
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's header fields, discarded
        raise TooManyInterimResponses(f"more than {MAX_INTERIM_RESPONSES} interim responses")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connect to the addresses that were checked, whatever DNS says by now."""

    response_class = _FinalResponse

    def __init__(
        self, host: str, port: int, *, addresses: list[str], timeout: float, deadline: float
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout, self._deadline)
        _within(self._deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connect to the checked addresses; verify the certificate against the URL's host name."""

    response_class = _FinalResponse

    def __init__(
        self, host: str, port: int, *, addresses: list[str], timeout: float, deadline: float
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._addresses = addresses
        self._deadline = deadline

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout, self._deadline)
        # The handshake is bounded as a whole by the socket timeout (CPython's ssl module).
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        _within(self._deadline)


@dataclass(frozen=True)
class Response:
    """What came back: the status, the body (at most `max_bytes`) and whether it was cut."""

    status: int
    body: bytes
    truncated: bool


class Expired(TimeoutError):
    """The watchdog ended the exchange."""


def exchange(
    method: str,
    destination: Destination,
    addresses: list[str],
    *,
    timeout: float,
    max_bytes: int,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Send one request to checked addresses and read at most `max_bytes` of the answer; follow no redirect.

    The timeout bounds the connection and each read; a watchdog also bounds the whole
    exchange (3 × the timeout), so a server dripping a byte at a time cannot hold the caller.
    Raise TimeoutError (Expired when the watchdog fired), ssl.SSLError, OSError or
    http.client.HTTPException.
    """
    connection_class = _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
    deadline = time.monotonic() + 3 * timeout
    connection = connection_class(
        destination.host, destination.port, addresses=addresses, timeout=timeout, deadline=deadline
    )
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(3 * timeout, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(method, destination.path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read(max_bytes + 1)
        if expired.is_set():
            raise Expired
        return Response(response.status, data[:max_bytes], len(data) > max_bytes)
    except (OSError, http.client.HTTPException):
        if expired.is_set():
            raise Expired from None
        raise
    finally:
        watchdog.cancel()
        connection.close()
