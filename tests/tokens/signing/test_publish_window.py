"""A retired key stays published until the last token any app server signed with it has expired."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command

from tokens.models import MAX_TOKEN_LIFETIME, SigningKey
from tokens.signing import keys
from tokens.signing.services import signing_key_ensure

pytestmark = pytest.mark.django_db


def test_publish_until_covers_servers_that_still_sign_with_the_retired_key(settings, monkeypatch):
    """Another app server signs with the retired key until it notices the rotation (up to twice
    PORTAL_SIGNING_KEY_REFRESH_SECONDS); the key's publication covers those tokens' lifetime too,
    not a fixed 300 s margin (with a 10-minute refresh they stopped verifying before expiring)."""
    settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS = 600
    other_server = keys._KeyCache()  # noqa: SLF001 - another process's key cache
    clock = [1_000.0]
    monkeypatch.setattr(keys.time, "monotonic", lambda: clock[0])
    old = other_server.get(signing_key_ensure)

    call_command("rotate_signing_key", stdout=io.StringIO())
    retired = SigningKey.objects.get(kid=old.kid)

    clock[0] += 590  # just inside that server's refresh interval
    assert other_server.get(signing_key_ensure).kid == old.kid  # still signing with it (by design)
    last_signed_at = retired.retired_at + timedelta(seconds=590)
    last_expiry = last_signed_at + timedelta(seconds=MAX_TOKEN_LIFETIME)
    assert retired.publish_until >= last_expiry, (
        f"key withdrawn {(last_expiry - retired.publish_until).total_seconds():.0f} s before "
        "the last token it signed expires"
    )
