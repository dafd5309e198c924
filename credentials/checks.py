"""System checks for what every credential kind shares."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_webhook_destinations_are_secure(app_configs, **kwargs):
    """Check that plain-http and loopback webhook destinations are allowed only in DEBUG."""
    if not settings.DEBUG and getattr(settings, "PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST", False):
        return [
            Warning(
                "PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST is on outside DEBUG.",
                hint="Webhooks must be delivered over https:// to public addresses in production "
                "(docs/webhooks.md).",
                id="credentials.W001",
            )
        ]
    return []
