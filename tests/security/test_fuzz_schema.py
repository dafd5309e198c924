"""Schemathesis against `/api/schema/`: every operation, bounded examples, with and without credentials.

The bar is the issue's: no 5xx and no traceback in any response. Conformance of every
documented status code is not asserted here (the API tests pin the behaviour).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, Phase, settings

from credentials.api_keys.services import api_key_create, api_key_request
from portal.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, ScopeFactory, UserFactory
from tests.isolation import _keyed_app_id
from tests.security.conftest import ALL_SCOPES
from tokens.clients.services import m2m_app_create
from tokens.models import M2MApplication

#: Examples per operation and credential mode: enough to cross every branch of the parsers,
#: small enough that the whole schema fuzz stays within a few seconds.
MAX_EXAMPLES = int(os.environ.get("FUZZ_SCHEMA_EXAMPLES", "6"))
#: A CSRF secret of the right shape: as cookie and header it lets session POSTs reach the handlers.
CSRF_SECRET = "fuzzCsrfSecret0123456789abcdefgh"
#: Scopes beyond the security catalogue that reach further handlers (deciding credential requests,
#: managing M2M applications).
FUZZ_SCOPES = (*ALL_SCOPES, "inventory:read", "requests:decide", "m2m_apps:manage")


# The schema view needs no database, so the schema is loaded once, at collection.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
# Schemathesis's coverage phase (run under Hypothesis's explicit phase) sends every boundary and
# negative case the schema defines, about 75 an operation: the same parsers and views in every
# credential mode. The API-key mode, which reaches every handler, runs them; the anonymous and
# session modes run the documented examples and the random ones (a third of the fuzz's time).
without_coverage = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
without_coverage.config.phases.update(phases=["examples", "fuzzing"])


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Keep the test's database connection across requests, as Django's own test client does.

    Schemathesis calls the bare WSGI handler, whose request signals would close the
    connection that holds the test transaction (PostgreSQL; SQLite's in-memory one survives).
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def credentials(db, settings):
    """Return request headers for each credential mode: none, an all-scopes API key, a session."""
    # Limits off: fuzzing is many failures from one address, and 429s would hide the handlers.
    settings.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 0
    organization = OrganizationFactory(slug="acme", name="Acme Inc")
    owner = UserFactory(email="owner@acme.test")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    for name in FUZZ_SCOPES:
        ScopeFactory(name=name)
    _row, key = api_key_create(
        organization=organization, name="fuzzer", owner=owner, scopes=list(FUZZ_SCOPES), actor=owner
    )
    target, _plaintext = api_key_create(
        organization=organization, name="target", owner=owner, scopes=["orders:read"], actor=owner
    )
    # A member's waiting request, so approve/deny/cancel reach the service (the owner may decide).
    requester = UserFactory(email="dev@acme.test")
    MembershipFactory(organization=organization, user=requester, role=Role.MEMBER)
    _pending, waiting = api_key_request(
        organization=organization,
        name="requested",
        owner=requester,
        scopes=["orders:read"],
        requester=requester,
        justification="fuzz",
    )
    # An application with a secret, and a private_key_jwt one with a key (for the public-keys paths).
    application, _secret = m2m_app_create(
        organization=organization, name="fuzzed", owner=owner, actor=owner, scopes=["orders:read"]
    )
    keyed = M2MApplication.objects.get(pk=_keyed_app_id(organization, owner))
    browser = Client()
    browser.force_login(owner)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    return {
        "targets": {
            "org_slug": "acme",
            "key_id": target.key_id,
            "request_id": waiting.pk,
            "app_id": application.pk,
            "secret_id": application.secrets.get().pk,
            "public_key_id": keyed.public_keys.get().pk,
            "keyed_app_id": keyed.pk,  # not a path parameter: used for the public-keys paths
        },
        "anonymous": {},
        "api_key": {"X-API-Key": key},
        "session": {"X-CSRFToken": CSRF_SECRET},
        "session_cookies": {settings.SESSION_COOKIE_NAME: session, settings.CSRF_COOKIE_NAME: CSRF_SECRET},
    }


def _check(
    case, headers: dict, *, in_acme: bool, targets: dict | None = None, cookies: dict | None = None
) -> None:
    if in_acme and case.path_parameters:
        # Reach the handlers with a real organisation and key, not only the 404s.
        case.path_parameters.update(
            {name: value for name, value in targets.items() if name in case.path_parameters}
        )
        if "/public-keys/" in case.path:
            case.path_parameters["app_id"] = targets["keyed_app_id"]
    if cookies:
        # Generated (empty or random) key headers and session cookies would win over the session.
        for name in ("Authorization", "X-API-Key"):
            (case.headers or {}).pop(name, None)
        case.cookies = {**(case.cookies or {}), **cookies}
    response = case.call(headers=headers)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text)
    assert "Traceback" not in response.text


bounded = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@without_coverage.parametrize()
@bounded
def test_without_credentials(case, credentials):
    _check(case, credentials["anonymous"], in_acme=False)


@schema.parametrize()
@bounded
def test_with_an_api_key_holding_every_scope(case, credentials):
    _check(case, credentials["api_key"], in_acme=True, targets=credentials["targets"])


@without_coverage.parametrize()
@bounded
def test_with_a_session(case, credentials):
    _check(
        case,
        credentials["session"],
        in_acme=True,
        targets=credentials["targets"],
        cookies=credentials["session_cookies"],
    )
