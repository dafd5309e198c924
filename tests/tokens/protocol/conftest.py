"""Fixtures of the protocol tests: a private_key_jwt application and its key; for token exchange, a
staff-allowed gateway (another organisation) and a customer key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from credentials.api_keys.services import api_key_create
from tests.support.pem import public_pem
from tokens.clients.services import m2m_app_create, m2m_app_set_exchange, m2m_app_set_staff_flag
from tokens.models import M2MApplication


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def pk_app(organization, owner, scopes, rsa_key):
    """An active `private_key_jwt` application whose registered key is `rsa_key`'s public half."""
    application, secret = m2m_app_create(
        organization=organization,
        name="Keyed service",
        owner=owner,
        actor=owner,
        scopes=["orders:read"],
        auth_method=M2MApplication.AuthMethod.PRIVATE_KEY_JWT,
        public_key=public_pem(rsa_key),
    )
    assert secret is None
    return application


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
