"""Which webhook URLs are allowed: HTTPS to public addresses only (checked again at every delivery).

A webhook makes the portal send requests to a place a customer chose, so it must not become
a way into the portal's own network (SSRF). The URL is checked when saved (scheme, no
credentials, no private IP literal) and the host is resolved again before every attempt; the
connection then goes to the address that was checked, so DNS cannot change in between.
PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST (on with DEBUG) admits http:// and loopback for
`localhost`, `127.0.0.1` and `[::1]` only, for development and the tests' receiver.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


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
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not local and not _public(literal):
        raise ValidationError("The URL must point to a public address.", code="private")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Destination(
        scheme=parts.scheme, host=host, port=port or (443 if parts.scheme == "https" else 80), path=path
    )


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


def resolve(destination: Destination) -> str:
    """Return the address to connect to, or raise ValidationError if any address is not public.

    Every address the name resolves to must be public (an attacker controlling DNS could
    otherwise mix a private one in); the first is used.
    """
    local = destination.host in LOCAL_HOSTS and _insecure_localhost_allowed()
    try:
        infos = socket.getaddrinfo(destination.host, destination.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ValidationError("The host name does not resolve.", code="dns") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise ValidationError("The host name does not resolve.", code="dns")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not (_public(address) or (local and address.is_loopback)):
            raise ValidationError("The host resolves to a non-public address.", code="private")
    return addresses[0]
