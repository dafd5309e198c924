"""Concurrent `rotate-secret` calls on one application serialise into one consistent state (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from credentials.api_keys.services import api_key_create
from portal.models import AuditEvent
from tests.factories import ScopeFactory
from tests.tokens.conftest import basic
from tokens.clients.services import MAX_LIVE_SECRETS
from tokens.models import ClientSecret


def _rotate_concurrently(url: str, key: str, callers: int) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(callers)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def rotate() -> None:
        try:
            client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
            barrier.wait(timeout=10)
            response = client.post(url, {"overlap_hours": 1}, "application/json")
            with lock:
                answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=rotate) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_leave_one_current_secret_and_respect_the_limit(
    require_postgres, organization, owner, app
):
    ScopeFactory(name="m2m_apps:manage")
    _row, key = api_key_create(
        organization=organization,
        name="automation",
        owner=owner,
        scopes=["m2m_apps:manage", "orders:read", "orders:write"],
        actor=owner,
    )
    url = f"/api/v1/orgs/acme/m2m-apps/{app.application.pk}/rotate-secret/"
    callers = MAX_LIVE_SECRETS + 1  # one secret exists: four rotations fit, two must be refused

    answers = _rotate_concurrently(url, key, callers)

    statuses = sorted(status for status, _body in answers)
    assert statuses == [201] * (MAX_LIVE_SECRETS - 1) + [409] * 2, answers
    assert {body["code"] for status, body in answers if status == 409} == {"too_many"}
    issued = [body["client_secret"] for status, body in answers if status == 201]
    assert len(set(issued)) == len(issued)
    secrets = list(ClientSecret.objects.filter(application=app.application).order_by("created_at", "id"))
    assert len(secrets) == MAX_LIVE_SECRETS
    # Exactly one secret is current (no end); each earlier one was retired by the rotation after it.
    assert [s.expires_at is None for s in secrets] == [False] * (MAX_LIVE_SECRETS - 1) + [True]
    events = AuditEvent.objects.filter(
        action="tokens.m2m_app.secret_rotated", target_id=str(app.application.pk)
    ).order_by("id")
    assert events.count() == MAX_LIVE_SECRETS - 1
    # Serialised: each rotation saw every secret issued before it (1, 2, 3, 4 previous secrets).
    assert [len(e.extra["previous_secret_hints"]) for e in events] == list(range(1, MAX_LIVE_SECRETS))
    # Every issued secret and the original (inside its overlap) still mint tokens.
    for secret in [app.client_secret, *issued]:
        response = Client().post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic(app.client_id, secret),
        )
        assert response.status_code == 200, response.content
