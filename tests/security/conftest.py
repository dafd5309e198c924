"""Fixtures for the security tests (`scopes`, `make_app` and `make_key` are in tests/conftest.py)."""

from __future__ import annotations

import pytest
from django.test import Client

from portal import authz
from tests.factories import ScopeFactory, make_api_key, make_m2m_app
from tests.isolation import two_organizations
from tests.security.authority import token_for

#: Every scope of the catalogue a security test's key holds unless it says otherwise.
ALL_SCOPES = ("orders:read", "orders:write", "api_keys:verify", "api_keys:manage")

#: Every portal scope and a customer scope: what the two-organisation world's credentials hold.
EVERY_SCOPE = [*sorted(authz.PORTAL_SCOPES), "orders:read"]


@pytest.fixture
def two_org_world(db, settings):
    """Alpha and Bravo (tests.isolation.two_organizations), and Alpha's owner as three principals:
    a session, an API key and an M2M token holding EVERY_SCOPE.

    Returns (org_a, org_b, user_a, user_b, {"session", "api_key", "access_token": Client}).
    """
    settings.PORTAL_STEP_UP_SECONDS = 3600
    for name in EVERY_SCOPE:
        ScopeFactory(name=name)
    org_a, org_b, user_a, user_b = two_organizations()
    session = Client()
    session.force_login(user_a)
    _row, key = make_api_key(org_a, user_a, name="a everything", scopes=EVERY_SCOPE)
    app, secret = make_m2m_app(org_a, user_a, name="a service", scopes=EVERY_SCOPE)
    clients = {
        "session": session,
        "api_key": Client(HTTP_AUTHORIZATION=f"Bearer {key}"),
        "access_token": Client(HTTP_AUTHORIZATION=f"Bearer {token_for(app, secret)}"),
    }
    return org_a, org_b, user_a, user_b, clients
