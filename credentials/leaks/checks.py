"""System check: configured secret-scanning public keys must parse, so a typo shows at start-up."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from credentials.leaks import signing


@register()
def check_secret_scanning_public_keys(app_configs, **kwargs):
    """Check that PORTAL_SECRET_SCANNING_PUBLIC_KEYS(_FILE), when set, holds usable P-256 keys."""
    if not signing.configured():
        return []
    try:
        signing.public_keys()
    except signing.KeysMisconfigured as exc:
        inline = getattr(settings, "PORTAL_SECRET_SCANNING_PUBLIC_KEYS", "")
        variable = "PORTAL_SECRET_SCANNING_PUBLIC_KEYS" + ("" if inline else "_FILE")
        return [
            Error(
                f"Secret scanning public keys ({variable}): {exc}",
                hint="Save https://api.github.com/meta/public_keys/secret_scanning and point "
                "PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE at it (docs/leak-reports.md).",
                id="credentials.E101",
            )
        ]
    return []
