"""Shared by the federation tests: issuers served on this machine, and one such issuer."""

from __future__ import annotations

import pytest

from tests.support.oidc_issuer import LocalIssuer


@pytest.fixture
def local_issuers(settings):
    """Let trusts name an issuer on 127.0.0.1 over http (refused otherwise), fetched within 1 s."""
    settings.PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST = True
    settings.PORTAL_FEDERATION_TIMEOUT_SECONDS = 1


@pytest.fixture
def issuer(local_issuers):
    """An OIDC issuer (discovery and JWKS) on a free loopback port, signing with its own key."""
    with LocalIssuer() as running:
        yield running
