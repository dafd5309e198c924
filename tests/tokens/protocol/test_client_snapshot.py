"""The shared client snapshot (tokens.clients.snapshot): no SQL on a warm token request,
and every write that could change what a token request decides reaches the next request at once.

These tests run against the shared Redis (`redis_cache`), as app servers do, and commit their
transactions (`transactional_db`): the snapshot is dropped once a change commits.
"""

from __future__ import annotations

import io
import time
from datetime import timedelta

import jwt
import pytest
import redis
import redis.connection
from django.contrib.auth import get_user_model
from django.core.cache import cache, caches
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credentials.governance.edits import credential_policy_set
from credentials.governance.models import SuspensionReason
from credentials.governance.reviews import credential_restore, credential_suspend
from credentials.models import Scope
from portal.models import Membership, Role
from portal.services.organizations import membership_change_role
from tests.conftest import TEST_REDIS_URL
from tests.factories import MembershipFactory, ScopeFactory, UserFactory
from tests.tokens.conftest import request_token
from tests.tokens.protocol.test_token_exchange_admin import _admin_form
from tokens.clients import snapshot as client_snapshot
from tokens.clients.services import (
    client_secret_revoke,
    client_secret_rotate,
    m2m_app_revoke,
    m2m_app_token_quota_set,
    m2m_app_update,
)
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.usefixtures("transactional_db", "redis_cache")


def outcome(creds, *, secret=None, **params):
    """Return what a token request decided: the error, or the token's scope, audience and organisation."""
    response = request_token(Client(), creds, secret=secret, **params)
    body = response.json()
    if response.status_code != 200:
        return (response.status_code, body.get("error"))
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    return (200, body["scope"], claims["aud"], claims["org_id"], claims["client_id"])


def warm(creds, **params):
    """Issue twice (the second from the snapshot); return the outcome.

    The application's creation left a tombstone (no snapshot is stored for TOMBSTONE_SECONDS):
    dropped here, as that time would.
    """
    cache.delete(client_snapshot.cache_key(creds.client_id))
    first = outcome(creds, **params)
    assert client_snapshot.read(creds.client_id) is not None, "the first request stores the snapshot"
    assert outcome(creds, **params) == first
    return first


def test_it_is_on_with_the_shared_cache_only(app, settings):
    assert client_snapshot.enabled()
    settings.PORTAL_CLIENT_SNAPSHOT = False
    assert not client_snapshot.enabled()
    settings.PORTAL_CLIENT_SNAPSHOT = True  # cannot switch it on over a per-process cache
    settings.CACHES = {"default": {"BACKEND": "portal.infra.cache.PortalLocMemCache", "LOCATION": "x"}}
    assert not client_snapshot.enabled()
    assert client_snapshot.hot_keys(app.client_id) == []
    for _ in range(2):  # the query on every request, as before
        with CaptureQueriesContext(connection) as queries:
            assert outcome(app)[0] == 200
        assert any("SELECT" in query["sql"] for query in queries.captured_queries)
    assert client_snapshot.read(app.client_id) is None


def test_a_warm_token_request_makes_no_sql_statement(app, django_assert_num_queries):
    assert warm(app)[0] == 200
    with django_assert_num_queries(0):
        response = request_token(Client(), app)
    assert response.status_code == 200, response.content


def test_a_warm_request_with_a_wrong_secret_reads_only_to_count_it(app, django_assert_num_queries):
    """The snapshot decides; the one query is the refusal's usage outcome, told apart after the
    response (tokens.protocol.client_outcomes), not the live-secrets query."""
    warm(app)
    with django_assert_num_queries(1):
        assert request_token(Client(), app, secret="ips_" + "x" * 32).status_code == 401


def test_an_unknown_client_is_not_stored(app):
    bogus = type(app)(app.application, "m2m_unknown", "ips_" + "x" * 32)
    assert outcome(bogus)[0] == 401
    assert client_snapshot.read("m2m_unknown") is None


def test_last_used_is_written_once_a_minute(app, django_assert_num_queries):
    warm(app)
    secret = ClientSecret.objects.get(application=app.application)
    first = secret.last_used_at
    assert first is not None
    with django_assert_num_queries(0):
        outcome(app)  # within the minute: no write
    # A minute later (as the process and the shared marker see it) the next use writes it once.
    from tokens.protocol import oauth

    oauth._last_use_claimed.clear()
    cache.delete(f"{oauth._LAST_USE_MARKER}{secret.pk}")
    ClientSecret.objects.filter(pk=secret.pk).update(last_used_at=first - timedelta(minutes=2))
    with django_assert_num_queries(1):
        outcome(app)
    secret.refresh_from_db()
    assert secret.last_used_at > first - timedelta(minutes=1)


def test_a_secret_expired_by_time_is_refused_from_the_snapshot(app):
    old = ClientSecret.objects.get(application=app.application)
    new, new_secret = client_secret_rotate(
        application=app.application, actor=app.application.owner, overlap=timedelta(hours=1)
    )
    assert warm(app)[0] == 200
    snapshot = client_snapshot.read(app.client_id)
    assert snapshot is not None
    # The snapshot holds the expiry: past it, the secret is refused with no write in between.
    later = timezone.now() + timedelta(hours=2)
    from tokens.protocol import oauth

    query = oauth._live_secrets_queries[next(iter(oauth._live_secrets_queries))]
    assert {s.pk for s in query.build(snapshot, timezone.now())} == {old.pk, new.pk}
    assert {s.pk for s in query.build(snapshot, later)} == {new.pk}


def test_a_reader_that_read_before_a_change_cannot_store_what_it_read(app):
    warm(app)
    stale = client_snapshot.read(app.client_id)
    client_snapshot.forget([app.client_id])  # outside a transaction: at once
    assert client_snapshot.read(app.client_id) is None
    client_snapshot.store(app.client_id, stale)  # a request that queried before the change committed
    assert client_snapshot.read(app.client_id) is None


def test_a_deploy_with_another_shape_reads_another_key(app, monkeypatch):
    key = client_snapshot.cache_key(app.client_id)
    monkeypatch.setattr(client_snapshot, "FORMAT", client_snapshot.FORMAT + 1)
    monkeypatch.setattr(client_snapshot, "_prefix", None)
    assert client_snapshot.cache_key(app.client_id) != key


def test_a_cache_outage_falls_back_to_the_database(app, settings):
    assert warm(app)[0] == 200
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.infra.cache.ResilientRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    assert client_snapshot.enabled()
    assert outcome(app)[0] == 200  # from the database
    client_secret_revoke(secret=ClientSecret.objects.get(application=app.application), actor=None)
    assert outcome(app) == (401, "invalid_client")  # fail safe, not fail open


def test_a_revocation_during_the_cache_back_off_still_drops_the_snapshot(app):
    """A failure a moment ago makes the cache skip Redis for 2 s; the tombstone is written anyway."""
    assert warm(app)[0] == 200
    backend = caches["default"]
    backend._down_until = time.monotonic() + 60
    client_secret_revoke(secret=ClientSecret.objects.get(application=app.application), actor=None)
    backend._down_until = 0.0
    assert client_snapshot.read(app.client_id) is None
    assert outcome(app) == (401, "invalid_client")


def test_a_tombstone_redis_refuses_is_made_before_this_server_reads_again(app, monkeypatch, caplog):
    assert warm(app)[0] == 200
    key = caches["default"].make_key(client_snapshot.cache_key(app.client_id))
    other_server = redis.Redis.from_url(TEST_REDIS_URL)

    def refused(self, *args, **options):
        raise redis.ConnectionError("refused")

    # Every command, pipelines included, fails on the wire; what Redis holds stays.
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", refused)
    client_secret_revoke(secret=ClientSecret.objects.get(application=app.application), actor=None)
    assert outcome(app) == (401, "invalid_client")  # meanwhile the database decides
    monkeypatch.undo()
    stale = other_server.get(key)
    assert stale is not None  # what other servers may still read (docs/operations.md)
    caches["default"]._down_until = 0.0
    assert outcome(app) == (401, "invalid_client")
    assert other_server.get(key) != stale  # deleted before that request read, then stored afresh
    assert "could not invalidate 1 client snapshot(s)" in caplog.text
    assert "made 1 owed cache invalidation(s)" in caplog.text
    other_server.close()


# --- every writer ---------------------------------------------------------------------------


def _owner_membership(application):
    return Membership.objects.get(user=application.owner, organization=application.organization)


def _second_owner(application):
    return MembershipFactory(
        organization=application.organization, role=Role.OWNER, user=UserFactory(email="boss@acme.test")
    ).user


def _staff_client():
    from tests.factories import enrol_totp

    staff = get_user_model().objects.create_superuser(email="staff@portal.test", password="x")
    enrol_totp(staff)
    client = Client()
    client.force_login(staff)
    return client


def _admin_suspend(app):
    response = _staff_client().post(
        reverse("admin:tokens_m2mapplication_changelist"),
        {"action": "suspend_selected", "_selected_action": [app.application.pk]},
    )
    assert response.status_code == 302


def _admin_edit_scopes(app):
    application = app.application
    data = _admin_form(
        application, allowed_scopes=[Scope.objects.get(name="orders:read").pk], token_lifetime="900"
    )
    url = reverse("admin:tokens_m2mapplication_change", args=[application.pk])
    response = _staff_client().post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]


def _owner_client(app):
    client = Client()
    client.force_login(app.application.owner)
    return client


def _rest_secret_revoke(app):
    secret = app.application.secrets.get()
    url = f"/api/v1/orgs/acme/m2m-apps/{app.application.pk}/secrets/{secret.pk}/revoke/"
    assert _owner_client(app).post(url).status_code == 200


def _rest_app_revoke(app):
    url = f"/api/v1/orgs/acme/m2m-apps/{app.application.pk}/revoke/"
    assert _owner_client(app).post(url, {"reason": "test"}, "application/json").status_code == 200


def _dashboard_rotate(app):
    url = f"/orgs/acme/apps/{app.application.pk}/rotate-secret/"
    assert _owner_client(app).post(url, {"overlap_hours": "0"}).status_code == 200


def _cli_rotate(app):
    call_command(
        "rotate_client_secret", "--client-id", app.client_id, "--overlap-hours", "0", stdout=io.StringIO()
    )


def _restore_after_suspend(app):
    credential_suspend(credential=app.application, actor=None, reason=SuspensionReason.MANUAL)
    assert outcome(app)[0] == 401
    credential_restore(credential=app.application, actor=None)


def _expire_by_edit(app):
    secret = app.application.secrets.get()
    secret.expires_at = timezone.now() - timedelta(seconds=1)
    secret.save()


def _quota(app):
    m2m_app_token_quota_set(application=app.application, actor=None, token_quota={"per_hour": 1})
    assert outcome(app)[0] == 200


def _delete_scope(app):
    Scope.objects.get(name="orders:write").delete()


def _rename_scope(app):
    scope = Scope.objects.get(name="orders:write")
    scope.name = "orders:writer"
    scope.save()


def _scope_reverse_clear(app):
    Scope.objects.get(name="orders:write").m2m_applications.clear()


def _scope_reverse_remove(app):
    Scope.objects.get(name="orders:write").m2m_applications.remove(app.application)


def _demote_owner(app):
    boss = _second_owner(app.application)
    membership_change_role(membership=_owner_membership(app.application), role=Role.MEMBER, actor=boss)


def _membership_queryset_delete(app):
    Membership.objects.filter(pk=_owner_membership(app.application).pk).delete()


def _rename_organization(app):
    organization = app.application.organization
    organization.slug = "acme-renamed"
    organization.save()


def _new_client_id(app):
    application = app.application
    application.client_id = "m2m_renamedclientid0000000"
    application.save()


def _audiences(app):
    application = app.application
    application.allowed_audiences = ["https://orders.example.com"]
    application.save(update_fields=["allowed_audiences"])


WRITERS = {
    # services
    "service: rotate, no overlap": lambda app: client_secret_rotate(
        application=app.application, actor=None, overlap=timedelta(0)
    ),
    "service: revoke the secret": lambda app: client_secret_revoke(
        secret=app.application.secrets.get(), actor=None
    ),
    "service: revoke the application": lambda app: m2m_app_revoke(application=app.application, actor=None),
    "service: narrow the scopes": lambda app: m2m_app_update(
        application=app.application, actor=app.application.owner, scopes=["orders:read"]
    ),
    "service: token quota": _quota,
    "governance: suspend": lambda app: credential_suspend(
        credential=app.application, actor=None, reason=SuspensionReason.MANUAL
    ),
    "governance: restore": _restore_after_suspend,
    "governance: IP allowlist": lambda app: credential_policy_set(
        credential=app.application, actor=None, allowed_ips=["10.9.9.9/32"]
    ),
    "governance: demote the owner": _demote_owner,
    # admin, REST, dashboard, CLI
    "admin: suspend action": _admin_suspend,
    "admin: change form scopes": _admin_edit_scopes,
    "rest: revoke the secret": _rest_secret_revoke,
    "rest: revoke the application": _rest_app_revoke,
    "dashboard: rotate, no overlap": _dashboard_rotate,
    "cli: rotate_client_secret, no overlap": _cli_rotate,
    # plain ORM writes: saves, queryset updates, deletions, m2m changes
    "orm: secret expired by edit": _expire_by_edit,
    "orm: secrets expired by update()": lambda app: ClientSecret.objects.filter(
        application=app.application
    ).update(expires_at=timezone.now() - timedelta(seconds=1)),
    "orm: status by update()": lambda app: M2MApplication.objects.filter(pk=app.application.pk).update(
        status="suspended", suspended_at=timezone.now()
    ),
    "orm: delete the application": lambda app: app.application.delete(),
    "orm: delete the secret": lambda app: app.application.secrets.get().delete(),
    "orm: scope removed": lambda app: app.application.allowed_scopes.remove(
        Scope.objects.get(name="orders:write")
    ),
    "orm: scopes cleared": lambda app: app.application.allowed_scopes.clear(),
    "orm: scope removed from its side": _scope_reverse_remove,
    "orm: scope cleared from its side": _scope_reverse_clear,
    "orm: scope renamed": _rename_scope,
    "orm: scope deleted": _delete_scope,
    "orm: owner's membership deleted": _membership_queryset_delete,
    "orm: organisation renamed": _rename_organization,
    "orm: client id edited": _new_client_id,
}


@pytest.mark.parametrize("writer", list(WRITERS), ids=list(WRITERS))
@pytest.mark.usefixtures("rate_clock")
def test_every_writer_reaches_the_next_token_request(writer, make_app):
    ScopeFactory(name="webhooks:manage")
    app = make_app(scopes=("orders:read", "orders:write", "webhooks:manage"))
    if writer == "governance: restore":
        before = warm(app)
        WRITERS[writer](app)
        assert outcome(app) == before  # back, though the snapshot said suspended
        return
    before = warm(app)
    WRITERS[writer](app)
    after = outcome(app)
    assert after != before, f"{writer}: the next token request still decided {before}"
    if writer == "service: token quota":
        assert after == (429, "slow_down")


def test_audiences_reach_the_next_token_request(make_app, catalogue):
    app = make_app()
    asked = {"resource": "https://orders.example.com"}
    assert warm(app, **asked) == (400, "invalid_target")
    _audiences(app)
    assert outcome(app, **asked)[0] == 200
