"""Client address resolution that trusts X-Forwarded-For only from configured proxies."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest


def _valid_ip(value: str) -> str | None:
    """Return the address normalised, an IPv4-mapped IPv6 one (`::ffff:10.0.0.1`, as a dual-stack
    socket reports an IPv4 peer) as the IPv4 address it is; None for anything else."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


@lru_cache(maxsize=4)
def _trusted(proxies: tuple[str, ...]) -> frozenset[str]:
    return frozenset(ip for ip in map(_valid_ip, proxies) if ip is not None)


def client_ip(request: HttpRequest) -> str | None:
    """Return the client's IP address.

    `X-Forwarded-For` is honoured only when the direct peer is listed in
    `PORTAL_TRUSTED_PROXIES`; the right-most address not itself a trusted proxy wins.
    """
    # Asked several times per request (logs, audit, rate limits): work it out once.
    cached = request.__dict__.get("_portal_client_ip", _UNSET)
    if cached is _UNSET:
        cached = request.__dict__["_portal_client_ip"] = _resolve_client_ip(request)
    return cached


_UNSET = object()


def _resolve_client_ip(request: HttpRequest) -> str | None:
    remote = _valid_ip(request.META.get("REMOTE_ADDR", ""))
    trusted = _trusted(tuple(settings.PORTAL_TRUSTED_PROXIES))
    if remote is None or remote not in trusted:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        ip = _valid_ip(hop)
        if ip is None:
            break
        if ip not in trusted:
            return ip
    return remote
