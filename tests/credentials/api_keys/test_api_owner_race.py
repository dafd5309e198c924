"""A REST rotation racing an owner change is refused as the move API refuses it (PostgreSQL, real locks).

`api_key_rotate` locks the owner's membership as authorised, then the key, and refuses with code
`conflict` when the key changed owner in between (`governance.ownership.check_owner_unchanged`): the
REST answer is `409 {"detail", "code": "conflict"}`, so a client knows to read the key again and retry.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction
from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_update
from tests.factories import make_api_key


def _a_backend_waits_for_a_lock(within: float = 20.0) -> bool:
    """Return whether some connection to this database waits for a row lock, polling up to `within` s."""
    deadline = time.monotonic() + within
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "select count(*) from pg_stat_activity "
                "where wait_event_type = 'Lock' and datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rotation_racing_an_owner_change_is_a_409_conflict(
    require_postgres, organization, owner, admin_user, scopes
):
    key, _plaintext = make_api_key(organization, owner, name="ci")
    reassigned, commit = threading.Event(), threading.Event()
    answer: dict = {}

    def reassign() -> None:
        try:
            with transaction.atomic():
                api_key_update(api_key=ApiKey.objects.get(pk=key.pk), owner=admin_user, actor=owner)
                reassigned.set()  # the key's row stays locked until this transaction commits
                commit.wait(timeout=30)
        finally:
            connection.close()

    def rotate() -> None:
        try:
            client = Client()
            client.force_login(owner)  # authorised as the key's owner, as it was when read
            response = client.post(f"/api/v1/orgs/acme/api-keys/{key.key_id}/rotate/", {}, "application/json")
            answer["status"], answer["body"] = response.status_code, response.json()
        finally:
            connection.close()

    first = threading.Thread(target=reassign)
    first.start()
    assert reassigned.wait(timeout=30)
    second = threading.Thread(target=rotate)
    second.start()
    try:
        assert _a_backend_waits_for_a_lock(), "the rotation never waited for the key's lock"
    finally:
        commit.set()
        first.join(timeout=60)
        second.join(timeout=60)

    assert ApiKey.objects.get(pk=key.pk).owner_id == admin_user.pk
    assert not ApiKey.objects.filter(replaces_id=key.pk).exists()  # refused: no successor
    assert answer["status"] == 409, answer
    assert answer["body"]["code"] == "conflict" and answer["body"]["detail"], answer
