"""Concurrent decisions and secret generation stay consistent (PostgreSQL row locks)."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from credentials.api_keys.services import api_key_request
from credentials.governance import approvals
from credentials.governance.models import CredentialRequest, RequestState
from portal.models import AuditEvent
from tokens.clients.services import m2m_app_request


def _race(functions) -> list[str]:
    barrier = threading.Barrier(len(functions))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(function) -> None:
        try:
            barrier.wait(timeout=10)
            function()
            result = "ok"
        except ValidationError as exc:
            result = f"refused:{exc.code}"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(f,)) for f in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


def _request(kind, organization, member):
    create = api_key_request if kind == "api_key" else m2m_app_request
    return create(
        organization=organization,
        name="contended",
        owner=member,
        scopes=[],
        requester=member,
        justification="x",
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_approve_and_deny_at_once_leave_one_decision(
    require_postgres, kind, organization, owner, admin_user, member
):
    credential, request = _request(kind, organization, member)
    outcomes = _race(
        [
            lambda: approvals.credential_request_approve(
                request=CredentialRequest.objects.get(pk=request.pk), actor=owner
            ),
            lambda: approvals.credential_request_deny(
                request=CredentialRequest.objects.get(pk=request.pk), actor=admin_user
            ),
        ]
    )
    assert outcomes == ["ok", "refused:decided"]
    request.refresh_from_db()
    assert request.state in (RequestState.APPROVED, RequestState.DENIED)
    decisions = AuditEvent.objects.filter(
        action__in=["credentials.request.approved", "credentials.request.denied"]
    )
    assert decisions.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_secret_is_generated_once_under_a_double_submit(require_postgres, kind, organization, owner, member):
    credential, request = _request(kind, organization, member)
    approvals.credential_request_approve(request=request, actor=owner)
    model = type(credential)
    outcomes = _race(
        [
            lambda: approvals.credential_secret_issue(
                credential=model.objects.get(pk=credential.pk), actor=member
            )
        ]
        * 2
    )
    assert outcomes == ["ok", "refused:issued"]
    assert AuditEvent.objects.filter(action__endswith=".secret_issued").count() == 1
