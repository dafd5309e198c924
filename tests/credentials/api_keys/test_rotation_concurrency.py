"""Concurrent rotations of one key leave exactly one successor and one audit event (PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_rotate
from credentials.api_keys.verification import api_key_verify
from portal.models import AuditEvent


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_rotations_leave_one_successor(require_postgres, make_key, owner):
    old, old_plain = make_key(name="contended")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    successors: list[str] = []
    lock = threading.Lock()

    def rotate() -> None:
        try:
            key = ApiKey.objects.get(pk=old.pk)
            barrier.wait(timeout=10)
            successor, plaintext = api_key_rotate(api_key=key, actor=owner, overlap=timedelta(hours=1))
            with lock:
                outcomes.append("succeeded")
                successors.append(plaintext)
        except ValidationError as exc:
            with lock:
                outcomes.append(f"refused:{exc.code}")
        finally:
            connection.close()

    threads = [threading.Thread(target=rotate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["refused:rotated", "succeeded"]
    assert ApiKey.objects.filter(replaces=old).count() == 1
    assert AuditEvent.objects.filter(action="credentials.api_key.rotated", target_id=str(old.pk)).count() == 1
    assert api_key_verify(successors[0]).valid
    assert api_key_verify(old_plain).valid  # inside its one-hour overlap


@pytest.mark.django_db
def test_the_database_refuses_a_second_successor(make_key, owner):
    old, _ = make_key()
    successor, _ = api_key_rotate(api_key=old, actor=owner, overlap=timedelta(hours=1))
    clone = ApiKey.objects.get(pk=successor.pk)
    clone.pk = None
    clone.key_id = "X" * 12
    with pytest.raises(IntegrityError), transaction.atomic():
        clone.save()


@pytest.mark.django_db
def test_rotation_refuses_bad_overlaps_and_dead_keys(make_key, owner):
    from credentials.api_keys.services import api_key_revoke

    key, _ = make_key()
    for overlap in (timedelta(seconds=-1), timedelta(days=7, seconds=1)):
        with pytest.raises(ValidationError):
            api_key_rotate(api_key=key, actor=owner, overlap=overlap)
    api_key_revoke(api_key=key, actor=owner, reason="x")
    with pytest.raises(ValidationError) as excinfo:
        api_key_rotate(api_key=key, actor=owner)
    assert excinfo.value.code == "inactive"
    assert not ApiKey.objects.filter(replaces=key).exists()
