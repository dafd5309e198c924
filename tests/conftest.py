"""Shared fixtures: organisations, members with each role, logged-in clients."""

from __future__ import annotations

import os

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from portal.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory


def pytest_collection_modifyitems(config, items):
    require_pg = os.environ.get("REQUIRE_POSTGRES") == "1"
    on_pg = "postgresql" in os.environ.get("DATABASE_URL", "")
    if on_pg or require_pg:
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL: set DATABASE_URL=postgresql://… (CI sets REQUIRE_POSTGRES=1)"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Argon2 (first in production settings, see test_settings) costs ~100 ms per hash; tests
    # create many users, so they hash with MD5. Tests that exercise hashing reset this.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def require_postgres():
    """Fail (not skip) a PostgreSQL-only test that is running on another database."""
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL")


@pytest.fixture
def organization(db):
    return OrganizationFactory(slug="acme", name="Acme Inc")


@pytest.fixture
def other_organization(db):
    return OrganizationFactory(slug="globex", name="Globex Corp")


@pytest.fixture
def owner(organization):
    return MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="owner@acme.test")
    ).user


@pytest.fixture
def admin_user(organization):
    return MembershipFactory(
        organization=organization, role=Role.ADMIN, user=UserFactory(email="admin@acme.test")
    ).user


@pytest.fixture
def member(organization):
    return MembershipFactory(
        organization=organization, role=Role.MEMBER, user=UserFactory(email="dev@acme.test")
    ).user


@pytest.fixture
def outsider(other_organization):
    """An owner of another organisation."""
    return MembershipFactory(
        organization=other_organization, role=Role.OWNER, user=UserFactory(email="owner@globex.test")
    ).user


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner_client(owner):
    return _client_for(owner)


@pytest.fixture
def admin_client_org(admin_user):
    return _client_for(admin_user)


@pytest.fixture
def member_client(member):
    return _client_for(member)


@pytest.fixture
def outsider_client(outsider):
    return _client_for(outsider)
