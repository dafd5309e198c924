"""Runtime policy of a credential, both kinds: an IP allowlist and a request rate limit.

The verification paths call `refusal(...)` once per request with what the credential's
snapshot (API keys) or row (M2M applications) holds; an empty allowlist and no limit cost two
dictionary reads. The allowlist travels with the credential, so a cache outage cannot bypass
it; the limit counts in the cache (`portal.infra.ratelimit`, shared through Redis) and fails open or
closed per `PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN`. Headers follow
draft-ietf-httpapi-ratelimit-headers (structured fields): `RateLimit-Policy: "default";q=100;w=60`
and `RateLimit: "default";r=0;t=37` (docs/api-keys.md).
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from rest_framework import exceptions

from portal.infra import ratelimit
from portal.infra.request_context import current_request_context

MAX_ALLOWED_IPS = 100
MAX_REQUESTS = 1_000_000
MAX_WINDOW_SECONDS = 86_400
#: The policy name in the RateLimit headers (one policy per credential).
POLICY_NAME = "default"

IP_DENIED = "ip_denied"
RATE_LIMITED = "rate_limited"


# --- validation -----------------------------------------------------------------------------


def clean_allowed_ips(value: Any) -> list[str]:
    """Return the allowlist normalised (`10.0.0.0/8`, `2001:db8::/32`), or raise a field error.

    `[]` (or None) allows any address. A bare address is a /32 (or /128); host bits set
    (`10.0.0.1/8`) is refused rather than silently widened.
    """
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        value = [part for part in re.split(r"[,\s]+", value) if part]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationError({"allowed_ips": "Give a list of CIDR strings."}, code="allowed_ips")
    if len(value) > MAX_ALLOWED_IPS:
        raise ValidationError(
            {"allowed_ips": f"Give at most {MAX_ALLOWED_IPS} networks."}, code="allowed_ips"
        )
    networks, errors = [], []
    for raw in value:
        try:
            network = _unmapped(ipaddress.ip_network(raw.strip(), strict=True))
        except ValueError as exc:
            reason = "host bits are set" if "host bits" in str(exc) else "not an IPv4 or IPv6 network"
            errors.append(f"{raw[:60]!r}: {reason}.")
            continue
        if str(network) not in networks:
            networks.append(str(network))
    if errors:
        raise ValidationError({"allowed_ips": errors}, code="allowed_ips")
    return networks


def _unmapped(network: ipaddress.IPv4Network | ipaddress.IPv6Network):
    """Return an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as its IPv4 one (`10.0.0.0/8`):
    client addresses are compared in IPv4 form (`_allowed`), so the mapped form would never match."""
    mapped = network.network_address.ipv4_mapped if network.version == 6 else None
    if mapped is None or network.prefixlen < 96:
        return network
    return ipaddress.ip_network((mapped, network.prefixlen - 96))


def clean_rate_limit(value: Any) -> dict[str, int] | None:
    """Return `{"requests": N, "per_seconds": S}` or None, or raise a field error."""
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        return parse_rate_limit(value)
    if not isinstance(value, dict) or set(value) != {"requests", "per_seconds"}:
        raise ValidationError(
            {"rate_limit": 'Give {"requests": N, "per_seconds": S} or null.'}, code="rate_limit"
        )
    requests, window = value["requests"], value["per_seconds"]
    errors = []
    if isinstance(requests, bool) or not isinstance(requests, int) or not 1 <= requests <= MAX_REQUESTS:
        errors.append(f"requests must be a whole number from 1 to {MAX_REQUESTS}.")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW_SECONDS:
        errors.append(f"per_seconds must be a whole number from 1 to {MAX_WINDOW_SECONDS} (one day).")
    if errors:
        raise ValidationError({"rate_limit": errors}, code="rate_limit")
    return {"requests": requests, "per_seconds": window}


def parse_rate_limit(text: str) -> dict[str, int]:
    """Parse the CLI and form spelling `N/S` (e.g. `100/60`) into a rate limit."""
    match = re.fullmatch(r"\s*(\d{1,10})\s*/\s*(\d{1,10})\s*", text or "")
    if match is None:
        raise ValidationError({"rate_limit": "Write the limit as N/S, e.g. 100/60."}, code="rate_limit")
    return clean_rate_limit({"requests": int(match[1]), "per_seconds": int(match[2])})


def format_rate_limit(rate_limit: dict[str, int] | None) -> str:
    """Return the `N/S` spelling of a rate limit ("" for none)."""
    return f"{rate_limit['requests']}/{rate_limit['per_seconds']}" if rate_limit else ""


def exceeds(rate_limit: dict[str, int] | None, ceiling: dict[str, int] | None) -> bool:
    """Return whether `rate_limit` allows more than the organisation's `ceiling` (None: no ceiling).

    The rule compares average rates: N per S is within a ceiling of C per W when N/S <= C/W
    (compared as N*W <= C*S, in whole numbers). No limit at all exceeds any ceiling.
    """
    if ceiling is None:
        return False
    if rate_limit is None:
        return True
    return rate_limit["requests"] * ceiling["per_seconds"] > ceiling["requests"] * rate_limit["per_seconds"]


def allowlist_within(allowed_ips: list[str], bound: list[str]) -> bool:
    """Return whether an allowlist admits no address that `bound` refuses (an empty list: every one).

    Both lists are normalised (`clean_allowed_ips`): each network of `allowed_ips` must lie
    inside one network of `bound`.
    """
    if not bound:
        return True
    if not allowed_ips:
        return False
    limits = _networks(tuple(bound))
    return all(
        any(network.version == limit.version and network.subnet_of(limit) for limit in limits)
        for network in _networks(tuple(allowed_ips))
    )


def looser_fields(
    allowed_ips: list[str],
    rate_limit: dict[str, int] | None,
    *,
    than: tuple[list[str], dict[str, int] | None],
) -> list[str]:
    """Return which parts of a runtime policy allow more than `than` = (allowlist, rate limit).

    `["allowed_ips"]` where the allowlist admits an address the other refuses, `["rate_limit"]`
    where the limit allows more on average (`exceeds`: no limit exceeds any limit).
    """
    bound_ips, bound_limit = than
    looser = []
    if not allowlist_within(allowed_ips, bound_ips):
        looser.append("allowed_ips")
    if exceeds(rate_limit, bound_limit):
        looser.append("rate_limit")
    return looser


def _field_messages(clean, value: Any) -> None:
    # A model field validator raises plain messages: Django files them under the field itself.
    try:
        clean(value)
    except ValidationError as exc:
        raise ValidationError([m for messages in exc.message_dict.values() for m in messages]) from None


def validate_allowed_ips(value: Any) -> None:
    """Model field validator (admin, forms)."""
    _field_messages(clean_allowed_ips, value)


def validate_rate_limit(value: Any) -> None:
    """Model field validator (admin, forms)."""
    _field_messages(clean_rate_limit, value)


# --- enforcement ----------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _networks(allowed: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(n, strict=False) for n in allowed)


def ip_allowed(allowed_ips: list[str] | tuple[str, ...], ip: str | None) -> bool:
    """Return whether `ip` is in the allowlist (an empty list allows every address)."""
    if not allowed_ips:
        return True
    if not ip:
        return False
    return _allowed(tuple(allowed_ips), ip)


@lru_cache(maxsize=8192)
def _allowed(allowed: tuple[str, ...], ip: str) -> bool:
    # The same clients call again and again: remember the answer per (list, address).
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(allowed))


@dataclass(frozen=True)
class Refusal:
    """Why a credential may not be used now: `ip_denied`, or `rate_limited` with `wait` seconds."""

    code: str
    wait: int = 0

    @property
    def detail(self) -> str:
        if self.code == IP_DENIED:
            return "This credential may not be used from this address."
        return f"This credential's request limit is used up. Retry after {self.wait} seconds."


def _fail_open() -> bool:
    return bool(getattr(settings, "PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN", True))


def rate_headers(rate_limit: dict[str, int], *, remaining: int, reset: int) -> dict[str, str]:
    """Return the draft-ietf-httpapi-ratelimit-headers fields for one credential's limit."""
    return {
        "RateLimit-Policy": f'"{POLICY_NAME}";q={rate_limit["requests"]};w={rate_limit["per_seconds"]}',
        "RateLimit": f'"{POLICY_NAME}";r={max(0, remaining)};t={max(0, reset)}',
    }


def _count(kind: str, ident: str, rate_limit: dict[str, int], respond: bool) -> Refusal | None:
    requests, window = rate_limit["requests"], rate_limit["per_seconds"]
    limit = ratelimit.Limit(requests, window)
    count = ratelimit.count(f"credential:{kind}", ident, limit)
    reset = max(1, math.ceil(window - (time.time() % window)))
    if count is None:  # the cache is down: the policy, but no remaining budget it never counted
        if respond:
            _respond_with(
                {"RateLimit-Policy": rate_headers(rate_limit, remaining=0, reset=reset)["RateLimit-Policy"]}
            )
        return None if _fail_open() else Refusal(RATE_LIMITED, reset)
    if respond:
        _respond_with(rate_headers(rate_limit, remaining=requests - count, reset=reset))
    if count > requests:
        return Refusal(RATE_LIMITED, reset)
    return None


def _respond_with(headers: dict[str, str]) -> None:
    context = current_request_context()
    if context is not None:
        context.response_headers.update(headers)


def refusal(
    *,
    kind: str,
    ident: str,
    allowed_ips: list[str] | None,
    rate_limit: dict[str, int] | None,
    ip: str | None,
    check_ip: bool = True,
    respond: bool = True,
) -> Refusal | None:
    """Check one use of a credential against its policy; count it against its limit.

    The allowlist is checked first, so a refused address does not spend the budget. With
    `respond`, the response of the request being served gets the credential's RateLimit
    headers (the caller's own credential; not a key a service asks `keys/verify` about).
    `check_ip=False` skips the allowlist when the address is not known (see `keys/verify`).
    """
    if check_ip and allowed_ips and not ip_allowed(allowed_ips, ip):
        return Refusal(IP_DENIED)
    if rate_limit:
        return _count(kind, ident, rate_limit, respond)
    return None


# --- API keys over REST ---------------------------------------------------------------------


class IpDenied(exceptions.PermissionDenied):
    """403 `{"detail", "code": "ip_denied"}`."""

    default_detail = Refusal(IP_DENIED).detail
    default_code = IP_DENIED


class RateLimited(exceptions.Throttled):
    """429 `{"detail", "code": "rate_limited"}` with `Retry-After` (the RateLimit fields come with it)."""

    default_code = RATE_LIMITED
    # Our detail says the wait already; DRF would add "Expected available in N seconds." again.
    extra_detail_singular = extra_detail_plural = ""


def api_key_budget(key: dict[str, Any]) -> str:
    """Return what a verified key's (its snapshot's) rate limit is counted under: its lineage.

    Every key of one rotation chain shares it, so a rotation (even one a key makes of itself)
    gives the integration no fresh budget, and the old and new key share one during the overlap,
    as an M2M application's secrets share its client id. A snapshot cached before snapshots
    carried the lineage counts under the key id until it is replaced (at most its lifetime).
    """
    return key.get("lineage") or key["key_id"]


def api_key_refusal(key: dict[str, Any], ip: str | None) -> exceptions.APIException | None:
    """Return the REST refusal for one use of a verified key (its snapshot) from `ip`, or None."""
    if not key.get("allowed_ips") and not key.get("rate_limit"):
        return None
    found = refusal(
        kind="api_key",
        ident=api_key_budget(key),
        allowed_ips=key.get("allowed_ips"),
        rate_limit=key.get("rate_limit"),
        ip=ip,
    )
    if found is None:
        return None
    if found.code == IP_DENIED:
        return IpDenied()
    return RateLimited(wait=found.wait, detail=found.detail, code=RATE_LIMITED)
