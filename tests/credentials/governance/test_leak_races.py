"""Leak reports racing other writes on PostgreSQL (real locks, real threads, real signatures).

What was wrong: the intake locked the leaked key first, then revoked it, and `api_key_revoke` then
locked the key's waiting requests, against the documented order (requests before the credential,
docs/governance.md). An approver deciding such a request at the same moment locked the request,
then waited for the key: a deadlock, PostgreSQL aborting one side (the report answered 503 and the
leaked key kept working until GitHub retried, or the decision failed with a database error).
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError
from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.governance import approvals
from credentials.governance.models import CredentialRequest, CredentialStatus, RequestState, RequestType
from credentials.leaks import services as leak_services
from credentials.leaks.models import LeakAction, LeakReport
from tests.factories import make_api_key
from tests.support.secret_scanning import keys_document, sign
from tests.support.threads import pause_in, run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/secret-scanning/reports"
KEY_ID = "k1"


@pytest.fixture(scope="module")
def signer():
    return ec.generate_private_key(ec.SECP256R1())


def _report(raw: str, signer):
    """POST a signed alert holding one API key; return the response."""
    body = json.dumps(
        [
            {
                "token": raw,
                "type": "identity_portal_api_key",
                "url": "https://github.com/o/r/blob/x/.env",
                "source": "content",
            }
        ]
    ).encode()
    return Client(raise_request_exception=False).post(
        URL,
        data=body,
        content_type="application/json",
        headers={"Github-Public-Key-Identifier": KEY_ID, "Github-Public-Key-Signature": sign(body, signer)},
    )


def test_a_leak_report_and_a_decision_on_the_keys_waiting_request_do_not_deadlock(
    require_postgres, monkeypatch, settings, signer, organization, owner, member, scopes
):
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = keys_document((KEY_ID, signer))
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE = ""
    key, raw = make_api_key(organization, member, scopes=["orders:read"])
    request = approvals.credential_request_create(
        credential=key,
        requester=member,
        request_type=RequestType.SCOPE_INCREASE,
        justification="need writes",
        requested_scopes=["orders:read", "orders:write"],
    )
    # The report pauses holding its first locks (the key, and now its waiting request before it)
    # just before it reads the policy and revokes; the decision starts meanwhile.
    reached = pause_in(monkeypatch, leak_services, "policy_for", thread="leak", seconds=1.5)

    def decide():
        assert reached.wait(timeout=10)
        return approvals.credential_request_approve(request=request, actor=owner)

    results = run_together(("leak", lambda: _report(raw, signer)), ("decide", decide))
    aborted = {
        name: result
        for name, result in results.items()
        if (isinstance(result, BaseException) and not isinstance(result, ValidationError))
        or getattr(result, "status_code", 0) >= 500
    }
    assert not aborted, f"deadlock: {aborted}"
    assert results["leak"].status_code == 200
    # The report went first (it held the request): the key is revoked, its request closed with it,
    # and the decision then found nothing left to decide.
    assert isinstance(results["decide"], ValidationError) and results["decide"].code == "decided"
    assert ApiKey.objects.get(pk=key.pk).status == CredentialStatus.REVOKED
    assert CredentialRequest.objects.get(pk=request.pk).state == RequestState.CANCELLED
    assert LeakReport.objects.get().action_taken == LeakAction.REVOKED
