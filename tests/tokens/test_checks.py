"""System checks of the tokens room."""

from __future__ import annotations

from tokens.checks import check_default_audience, check_signing_key_encryption_key


def test_checks_pass_with_the_development_settings():
    assert check_signing_key_encryption_key(None) == []
    assert check_default_audience(None) == []


def test_bad_encryption_key_is_an_error(settings):
    settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY = "not-a-fernet-key"
    assert [e.id for e in check_signing_key_encryption_key(None)] == ["tokens.E001"]


def test_relative_default_audience_is_an_error(settings):
    settings.PORTAL_DEFAULT_AUDIENCE = "/api"
    assert [e.id for e in check_default_audience(None)] == ["tokens.E002"]


def test_a_previous_encryption_key_that_is_not_a_fernet_key_is_an_error(settings):
    from cryptography.fernet import Fernet

    settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert check_signing_key_encryption_key(None) == []
    settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "typo"]
    assert [e.id for e in check_signing_key_encryption_key(None)] == ["tokens.E003"]
