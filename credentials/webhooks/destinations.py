"""Which webhook URLs are allowed: HTTPS to public addresses only (checked again at every delivery).

A webhook makes the portal send requests to a place a customer chose, so it must not become
a way into the portal's own network (SSRF). The checks are the shared ones of
`portal.infra.outbound` (also used to fetch federation issuers' keys): the URL is checked when
saved (scheme, no credentials, no private IP literal) and the host is resolved again before
every attempt; the connection then goes to an address that was checked, so DNS cannot change
in between. PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST (on with DEBUG) admits http:// and
loopback for `localhost`, `127.0.0.1` and `[::1]` only, for development and the tests' receiver.
"""

from __future__ import annotations

from django.conf import settings

from portal.infra import outbound
from portal.infra.outbound import LOCAL_HOSTS, Destination

__all__ = ["LOCAL_HOSTS", "Destination", "parse_url", "resolve"]


def _insecure_localhost_allowed() -> bool:
    return bool(getattr(settings, "PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST", False))


def parse_url(url: str) -> Destination:
    """Check a webhook URL's shape; return its parts or raise ValidationError (no DNS lookup)."""
    return outbound.parse_url(
        url, allow_insecure_localhost=_insecure_localhost_allowed(), purpose="Webhooks are sent"
    )


def resolve(destination: Destination) -> list[str]:
    """Return the checked addresses of a webhook destination (bounded by PORTAL_WEBHOOK_TIMEOUT_SECONDS)."""
    return outbound.resolve(
        destination,
        allow_insecure_localhost=_insecure_localhost_allowed(),
        timeout=settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS,
    )
