"""Which webhook URLs are allowed: HTTPS to public addresses only (checked again at every delivery).

A webhook makes the portal send requests to a place a customer chose, so it must not become
a way into the portal's own network (SSRF). The URL is checked when saved (scheme, no
credentials, no private IP literal) and the host is resolved again before every attempt; the
connection then goes to an address that was checked, so DNS cannot change in between.
PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST (on with DEBUG) admits http:// and loopback for
`localhost`, `127.0.0.1` and `[::1]` only, for development and the tests' receiver.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
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


def _insecure_localhost_allowed() -> bool:
    return bool(getattr(settings, "PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST", False))


def parse_url(url: str) -> Destination:
    """Check a webhook URL's shape; return its parts or raise ValidationError (no DNS lookup)."""
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
    local = host in LOCAL_HOSTS and _insecure_localhost_allowed()
    if parts.scheme != "https" and not local:
        raise ValidationError("Webhooks are sent over HTTPS only: enter an https:// URL.", code="scheme")
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


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Return whether `address` is a public unicast address (IPv4 inside IPv6 judged as IPv4)."""
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

    worker = threading.Thread(target=lookup, name="webhook-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    return outcome["infos"]


def resolve(destination: Destination) -> list[str]:
    """Return the addresses to connect to, in the resolver's order, or raise ValidationError.

    Every address the name resolves to must be public (an attacker controlling DNS could
    otherwise mix a private one in). The lookup is bounded by PORTAL_WEBHOOK_TIMEOUT_SECONDS.
    """
    local = destination.host in LOCAL_HOSTS and _insecure_localhost_allowed()
    try:
        infos = _getaddrinfo(destination.host, destination.port, settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS)
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
