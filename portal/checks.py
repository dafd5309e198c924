"""System checks for deployment invariants."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from portal.infra.crypto import peppers


@register(Tags.security, deploy=True)
def check_issuer_is_https(app_configs, **kwargs):
    """Check that the token issuer is an https URL outside DEBUG."""
    if not settings.DEBUG and not settings.PORTAL_ISSUER.startswith("https://"):
        return [
            Warning(
                "PORTAL_ISSUER is not an https:// URL.",
                hint="Tokens name their issuer; production issuers must use TLS.",
                id="portal.W001",
            )
        ]
    return []


@register()
def check_peppers(app_configs, **kwargs):
    """Check that PORTAL_PEPPERS parses."""
    try:
        peppers()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="portal.E001")]
    return []


@register(Tags.security, deploy=True)
def check_webauthn_origin_is_secure(app_configs, **kwargs):
    """Check that WebAuthn accepts plain-HTTP origins only in DEBUG."""
    if not settings.DEBUG and getattr(settings, "MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN", False):
        return [
            Warning(
                "PORTAL_WEBAUTHN_ALLOW_INSECURE_ORIGIN is on outside DEBUG.",
                hint="Passkeys must be registered and used over https:// in production.",
                id="portal.W010",
            )
        ]
    return []
