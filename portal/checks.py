"""System checks for deployment invariants, and `stop_on_check_errors` for the WSGI/ASGI entry points.

A value that cannot be used at all stops start-up in portal/settings.py (the peppers, the encryption
keys, the address lists, booleans); the errors the checks report (portal.E002, tokens.E00x,
credentials.E101) stop it when the application is loaded: gunicorn runs no system checks itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register, run_checks
from django.core.exceptions import ImproperlyConfigured


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
def check_base_url(app_configs, **kwargs):
    """Check that PORTAL_BASE_URL, the start of every link in e-mails, is an absolute http(s) URL."""
    parts = urlsplit(settings.PORTAL_BASE_URL)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            Error(
                f"PORTAL_BASE_URL is {settings.PORTAL_BASE_URL[:80]!r}: not an absolute http(s) URL.",
                hint="Links in e-mails start with it, e.g. https://portal.example.com.",
                id="portal.E002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_base_url_is_https(app_configs, **kwargs):
    """Check that e-mailed links use https outside DEBUG."""
    if not settings.DEBUG and urlsplit(settings.PORTAL_BASE_URL).scheme == "http":
        return [
            Warning(
                "PORTAL_BASE_URL is not an https:// URL.",
                hint="Invitation and password-reset links carry secrets; production links must use TLS.",
                id="portal.W002",
            )
        ]
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


def stop_on_check_errors() -> None:
    """Refuse to start, as `manage.py` would, when a system check reports an error.

    Called by portal.wsgi and portal.asgi once Django is set up: `manage.py` runs the checks before
    every command, gunicorn and uvicorn run none, so a setting only a check refuses (a mail link
    base that is no URL, unreadable secret-scanning keys) started and failed at request time.
    The checks that need the database are not run (they are `manage.py check --database`'s).
    """
    errors = [message for message in run_checks() if message.is_serious() and not message.is_silenced()]
    if errors:
        raise ImproperlyConfigured(
            "; ".join(f"{message.id}: {message.msg}" for message in errors) + " (see docs/configuration.md)"
        )
