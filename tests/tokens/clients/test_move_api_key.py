"""Moving an API key to an M2M application: the service, the pinned command, refusals, a race (PostgreSQL)."""

from __future__ import annotations

import functools
import json
import threading
from io import StringIO

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_request, api_key_revoke
from credentials.api_keys.verification import api_key_verify
from credentials.governance.models import SuspensionReason
from credentials.governance.org_policy import policy_update
from credentials.governance.reviews import credential_suspend
from portal.models import AuditEvent
from tests.tokens.conftest import AppCredentials, request_token
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_key(make_key):
    """The shared factory with this module's defaults: a live "nightly export" reading orders and billing."""
    return functools.partial(
        make_key, environment="live", name="nightly export", scopes=("orders:read", "billing:read")
    )


def move(key_id: str) -> dict:
    out = StringIO()
    call_command("move_api_key_to_m2m_app", "--key-id", key_id, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_the_command_prints_the_application_with_the_keys_owner_scopes_and_environment(
    client, make_key, owner
):
    key, plaintext = make_key(environment="test")
    result = move(key.key_id)

    assert {"id", "client_id", "client_secret", "key_id", "status"} <= set(result)
    assert result["status"] == "active" and result["key_id"] == key.key_id
    application = M2MApplication.objects.get(pk=result["id"])
    assert application.client_id == result["client_id"]
    assert application.owner == owner
    assert sorted(application.allowed_scopes.values_list("name", flat=True)) == [
        "billing:read",
        "orders:read",
    ]
    assert application.environment == "test" and result["environment"] == "test"
    assert application.moved_from_key == key
    # The new application's secret mints a token carrying the key's environment and scopes.
    response = request_token(
        client, AppCredentials(application, result["client_id"], result["client_secret"])
    )
    assert response.status_code == 200, response.content
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["environment"] == "test"
    assert claims["scope"] == "billing:read orders:read"
    # The key keeps working until someone revokes it.
    assert api_key_verify(plaintext).valid
    # Both credentials' audit trails name the other.
    moved = AuditEvent.objects.get(action="credentials.api_key.moved", target_id=str(key.pk))
    assert moved.extra["moved_to"] == application.client_id
    linked = AuditEvent.objects.get(action="tokens.m2m_app.moved", target_id=str(application.pk))
    assert linked.extra["moved_from"] == key.key_id
    created = AuditEvent.objects.get(action="tokens.m2m_app.created", target_id=str(application.pk))
    assert created.extra["moved_from"] == key.key_id
    assert result["client_secret"] not in json.dumps([e.extra for e in AuditEvent.objects.all()])


def test_the_command_accepts_the_display_prefix(make_key):
    key, _ = make_key()
    assert move(key.display_prefix)["key_id"] == key.key_id


def test_under_approval_the_application_waits_without_a_secret_and_the_key_keeps_working(
    organization, make_key, owner
):
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, plaintext = make_key()
    result = move(key.key_id)
    assert result["status"] == "pending"
    assert result["client_secret"] is None
    assert "approval" in result["detail"]
    application = M2MApplication.objects.get(pk=result["id"])
    assert application.status == "pending" and application.moved_from_key == key
    assert application.secrets.count() == 0
    assert api_key_verify(plaintext).valid


@pytest.mark.parametrize("approval", [False, True], ids=["at once", "under approval"])
def test_the_application_keeps_the_keys_ip_allowlist_and_rate_limit(organization, make_key, owner, approval):
    """The replacement is no wider than the key (the authority rule), as a rotation keeps them."""
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=approval)
    key, _plaintext = make_key(allowed_ips=["10.0.0.0/8"], rate_limit={"requests": 10, "per_seconds": 60})
    application = api_key_move_to_m2m_app(api_key=key, actor=owner).application
    application.refresh_from_db()
    assert application.status == ("pending" if approval else "active")
    assert application.allowed_ips == ["10.0.0.0/8"]
    assert application.rate_limit == {"requests": 10, "per_seconds": 60}


@pytest.mark.parametrize("state", ["revoked", "suspended", "pending", "moved"])
def test_refusals_are_clear_and_create_nothing(organization, make_key, owner, state):
    if state == "pending":
        policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
        key, _ = api_key_request(
            organization=organization,
            name="waiting",
            owner=owner,
            scopes=["orders:read"],
            requester=owner,
            justification="needed",
        )
    else:
        key, _ = make_key()
    if state == "revoked":
        api_key_revoke(api_key=key, actor=owner, reason="gone")
    elif state == "suspended":
        credential_suspend(credential=key, actor=owner, reason=SuspensionReason.MANUAL)
    elif state == "moved":
        move(key.key_id)
    before = M2MApplication.objects.count()
    with pytest.raises(CommandError) as excinfo:
        move(key.key_id)
    expected = {
        "revoked": "This key is revoked",
        "suspended": "This key is suspended",
        "pending": "This key is pending",
        "moved": "already moved to the M2M application",
    }[state]
    assert expected in str(excinfo.value)
    assert M2MApplication.objects.count() == before


def test_an_unknown_key_is_refused(db):
    with pytest.raises(CommandError, match="No API key with id 'nope'"):
        move("nope")


def test_the_key_never_moves_twice_even_when_the_service_is_called_directly(make_key, owner):
    key, _ = make_key()
    api_key_move_to_m2m_app(api_key=key, actor=owner)
    with pytest.raises(ValidationError) as excinfo:
        api_key_move_to_m2m_app(api_key=key, actor=owner)
    assert excinfo.value.code == "moved"
    assert AuditEvent.objects.filter(action="credentials.api_key.moved").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_moves_leave_one_application(require_postgres, make_key, owner):
    key, _ = make_key(name="contended")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            row = ApiKey.objects.get(pk=key.pk)
            barrier.wait(timeout=10)
            api_key_move_to_m2m_app(api_key=row, actor=owner)
            with lock:
                outcomes.append("moved")
        except ValidationError as exc:
            with lock:
                outcomes.append(f"refused:{exc.code}")
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["moved", "refused:moved"]
    assert M2MApplication.objects.filter(moved_from_key=key).count() == 1
    assert AuditEvent.objects.filter(action="credentials.api_key.moved").count() == 1
