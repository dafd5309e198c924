"""Shared fixtures: organisations, members with each role, logged-in clients, scopes, keys and apps."""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache, caches
from django.db import connection
from django.test import Client

from credentials import last_used, usage
from portal.models import Role
from tests.factories import (
    AppCredentials,
    MembershipFactory,
    OrganizationFactory,
    UserFactory,
    enrol_totp,
    make_api_key,
    make_m2m_app,
    scope_catalogue,
)
from tests.support.clock import rate_clock  # noqa: F401  the fixture, for every test
from tests.support.oidc_issuer import LocalIssuer
from tests.support.redis_server import TempRedis
from tokens.signing import keys as signing_keys


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


@pytest.fixture(autouse=True, scope="session")
def _static_files_found_on_demand():
    """WhiteNoise lists every static file (about 700, through the finders) each time a handler loads
    its middleware, that is for every test `Client`: a sixth of a dashboard test's time. In
    autorefresh mode it looks a file up when one is asked for instead; tests ask for almost none."""
    django_settings.WHITENOISE_AUTOREFRESH = True


@pytest.fixture(autouse=True, scope="session")
def _postgres_flushed_by_delete():
    """Empty the tables after a transactional test with DELETE, not Django's one TRUNCATE.

    A TRUNCATE of the schema's 45 tables makes new files for each: about 0.1 s (0.2–0.4 s beside
    another worker) at the end of each of the suite's 300 or so transactional tests, where
    deleting the few rows a test wrote takes 2 ms. The foreign keys are deferrable (Django makes
    them so on PostgreSQL), so the order does not matter. A test that asks for its sequences to
    be reset still gets the TRUNCATE.
    """
    if connection.vendor != "postgresql":
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations  # needs psycopg

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        delete = style.SQL_KEYWORD("DELETE FROM")
        deletes = [f"{delete} {style.SQL_FIELD(self.quote_name(table))};" for table in tables]
        return ["SET CONSTRAINTS ALL DEFERRED;", *deletes]

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = truncate


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Argon2 (first in production settings, see test_settings) costs ~100 ms per hash; tests
    # create many users, so they hash with MD5. Tests that exercise hashing reset this.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]


@pytest.fixture(autouse=True)
def _last_used_written_after_each_request(settings):
    # Servers batch last-used writes (one UPDATE per PORTAL_LAST_USED_FLUSH_SECONDS per process,
    # credentials.last_used); tests read last_used_at right after a request, so they write at the
    # end of each request. Tests of the batching set their own interval.
    settings.PORTAL_LAST_USED_FLUSH_SECONDS = 0
    yield
    last_used.forget()  # a use held by a request that never finished must not reach the next test
    usage_idle_flush_cancel()


def usage_idle_flush_cancel() -> None:
    """Stop usage metering's idle flush armed by a test, so it cannot flush in the next one."""
    usage._idle.cancel()


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_signing_keys():
    """Forget signing keys cached in this process: the rows behind them went with the last test's data."""
    signing_keys.forget_loaded_key()
    signing_keys.forget_public_keys()
    yield
    signing_keys.forget_loaded_key()
    signing_keys.forget_public_keys()


@pytest.fixture
def require_postgres():
    """Fail (not skip) a PostgreSQL-only test that is running on another database."""
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL")


def _per_worker(url: str) -> str:
    """Give each pytest-xdist worker its own Redis database: the base one, then the ones below it.

    Tests clear the database they use (FLUSHDB), so two workers must never share one. Worker
    gw0 keeps the configured database, gw1 takes the one below it (modulo Redis's 16).
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.lstrip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base - int(worker[2:])) % 16}"))


#: The Redis that cache tests share (CI gives each run its own database through TEST_REDIS_URL;
#: each xdist worker uses its own database, see _per_worker).
TEST_REDIS_URL = _per_worker(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9"))


@pytest.fixture
def redis_cache(settings, request):
    """Point the default cache at the shared Redis (TEST_REDIS_URL), as app servers share it.

    Skips without a Redis there, unless in CI or with TEST_REDIS_URL set, where that is a failure.
    """
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        if os.environ.get("CI") or os.environ.get("TEST_REDIS_URL"):
            pytest.fail(f"Redis is required at {TEST_REDIS_URL}")
        pytest.skip(f"no Redis at {TEST_REDIS_URL}")
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.infra.cache.ResilientRedisCache",
            "LOCATION": TEST_REDIS_URL,
            "KEY_PREFIX": request.module.__name__.rpartition(".")[2],
        }
    }
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def redis_server():
    """Return a redis-server of the test's own on a free port (never the shared 6379); stop it after."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = TempRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def organization(db):
    return OrganizationFactory(slug="acme", name="Acme Inc")


@pytest.fixture
def other_organization(db):
    return OrganizationFactory(slug="globex", name="Globex Corp")


def _member_of(organization, role: str, email: str):
    return MembershipFactory(organization=organization, role=role, user=UserFactory(email=email)).user


@pytest.fixture
def owner(organization):
    return _member_of(organization, Role.OWNER, "owner@acme.test")


@pytest.fixture
def admin_user(organization):
    return _member_of(organization, Role.ADMIN, "admin@acme.test")


@pytest.fixture
def member(organization):
    return _member_of(organization, Role.MEMBER, "dev@acme.test")


@pytest.fixture
def outsider(other_organization):
    """An owner of another organisation."""
    return _member_of(other_organization, Role.OWNER, "owner@globex.test")


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner_client(owner):
    return _client_for(owner)


@pytest.fixture
def recent_owner_client(owner, settings) -> Client:
    """The owner, signed in just now (step-up passes), answered as a browser is: a 500 is a response."""
    settings.PORTAL_STEP_UP_SECONDS = 3600
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    return client


@pytest.fixture
def staff_client(db) -> Client:
    """A client signed in as the portal's staff (a superuser with a second factor, as staff must
    have to use the admin); the account is `staff_client.staff`."""
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)
    client = _client_for(staff)
    client.staff = staff
    return client


@pytest.fixture
def admin_client_org(admin_user):
    return _client_for(admin_user)


@pytest.fixture
def member_client(member):
    return _client_for(member)


@pytest.fixture
def outsider_client(outsider):
    return _client_for(outsider)


@pytest.fixture
def scopes(db):
    """Create the scope catalogue (`tests.factories.CATALOGUE`); return the scopes by name."""
    return scope_catalogue()


@pytest.fixture
def make_key(organization, owner, scopes):
    """Return a factory: `make_key(**overrides)` -> `(row, plaintext)`, by default `owner`'s key in Acme.

    Overrides are those of `tests.factories.make_api_key` plus `organization` and `owner`.
    """

    def make(*, organization=organization, owner=owner, **kwargs):
        return make_api_key(organization, owner, **kwargs)

    return make


@pytest.fixture
def make_app(organization, owner, scopes):
    """Return a factory: `make_app(organization=None, app_owner=None, **overrides)` -> `AppCredentials`.

    By default `owner`'s application in Acme; overrides are those of `tests.factories.make_m2m_app`.
    """

    def make(organization=None, app_owner=None, **kwargs) -> AppCredentials:
        application, secret = make_m2m_app(organization or default_organization, app_owner or owner, **kwargs)
        return AppCredentials(application, application.client_id, secret)

    default_organization = organization
    return make


@pytest.fixture
def oidc_issuer(settings):
    """A running OIDC issuer on 127.0.0.1 (tests.support.oidc_issuer) that federation may trust."""
    settings.PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST = True
    settings.PORTAL_FEDERATION_TIMEOUT_SECONDS = 1
    with LocalIssuer() as running:
        yield running


# --- the Django admin -------------------------------------------------------------------------------


@pytest.fixture
def superuser(db):
    """A superuser with a second factor (staff need one to reach the admin)."""
    user = get_user_model().objects.create_superuser(email="root@portal.test", password="x")
    enrol_totp(user)
    return user


@pytest.fixture
def super_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def staff_with(db):
    """Return a factory: staff_with("app.codename", ...) -> the client of a staff user holding only those."""

    def make(*perms, email="staff@portal.test"):
        user = get_user_model().objects.create_user(email=email, password="x", is_staff=True)
        enrol_totp(user)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make
