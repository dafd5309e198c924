"""System checks for the tokens room."""

from __future__ import annotations

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from oauth2_provider.oauth2_validators import is_valid_resource_uri

from portal.infra.crypto import check_fernet_keys


@register()
def check_signing_key_encryption_key(app_configs, **kwargs):
    """Check that PORTAL_SIGNING_KEY_ENCRYPTION_KEY and every previous key are usable Fernet keys."""
    try:
        Fernet(settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY.encode())
    except (ValueError, TypeError):
        return [
            Error(
                "PORTAL_SIGNING_KEY_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes).",
                hint='Generate one: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"',
                id="tokens.E001",
            )
        ]
    try:
        check_fernet_keys(settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS)
    except ValueError:
        return [
            Error(
                "PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY holds a value that is not a Fernet key; list the "
                "previous PORTAL_SIGNING_KEY_ENCRYPTION_KEY value(s), comma-separated.",
                id="tokens.E003",
            )
        ]
    return []


@register()
def check_default_audience(app_configs, **kwargs):
    """Check that the default audience is an absolute URI, as RFC 8707 resource indicators are."""
    if not is_valid_resource_uri(settings.PORTAL_DEFAULT_AUDIENCE):
        return [
            Error(
                "PORTAL_DEFAULT_AUDIENCE must be an absolute URI without fragment, e.g. https://portal.example.com/api.",
                id="tokens.E002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_federation_issuers_are_secure(app_configs, **kwargs):
    """Check that plain-http loopback federation issuers are allowed only in DEBUG."""
    if not settings.DEBUG and getattr(settings, "PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST", False):
        return [
            Warning(
                "PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST is on outside DEBUG.",
                hint="Issuer keys must be fetched over https:// in production.",
                id="tokens.W001",
            )
        ]
    return []
