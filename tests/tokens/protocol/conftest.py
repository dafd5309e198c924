"""Fixtures of the token-exchange tests: a staff-allowed gateway (another organisation) and a customer key."""

from __future__ import annotations

import pytest

from credentials.api_keys.services import api_key_create
from tokens.clients.services import m2m_app_set_exchange, m2m_app_set_staff_flag


@pytest.fixture
def gateway(make_app, other_organization, outsider):
    """A staff-allowed gateway (of another organisation), not trusted to report client addresses."""
    creds = make_app(organization=other_organization, app_owner=outsider, name="API gateway")
    creds.application = m2m_app_set_exchange(application=creds.application, allowed=True, actor=None)
    return creds


@pytest.fixture
def trusted_gateway(gateway):
    gateway.application = m2m_app_set_staff_flag(
        application=gateway.application, flag="may_report_client_ip", value=True, actor=None
    )
    return gateway


@pytest.fixture
def make_customer_key(organization, owner, scopes):
    def make(**kwargs):
        return api_key_create(
            organization=organization, name="shop", owner=owner, scopes=["orders:read"], actor=owner, **kwargs
        )

    return make
