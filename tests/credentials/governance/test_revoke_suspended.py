"""A suspended credential (orphaned, review overdue, suspended by staff) can still be revoked, and a
leaked one that is suspended is revoked under the default leak policy. An API key used to keep its
suspension fields on the revoked row: the `api_key_suspended_at_matches_status` check refused the
save, so the dashboard answered 500 and every leak report about it rolled back (GitHub retried for
ever, the leaked key was never revoked)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from credentials.governance.models import CredentialStatus, SuspensionReason
from credentials.governance.reviews import credential_revoke, credential_suspend
from credentials.leaks.models import LeakReport
from tests.credentials.governance.test_leak_reports import KEY_ID, URL, entry
from tests.factories import make_api_key
from tests.support.secret_scanning import keys_document, sign

pytestmark = pytest.mark.django_db

REASONS = [SuspensionReason.ORPHANED, SuspensionReason.REVIEW_OVERDUE, SuspensionReason.MANUAL]


@pytest.mark.parametrize("reason", REASONS)
def test_a_suspended_credential_is_revoked_through_its_service(kit, owner, member, reason):
    credential, _secret = kit.create(owner=member)
    credential_suspend(credential=credential, actor=owner, reason=reason)
    credential_revoke(credential=kit.reload(credential), actor=owner, reason="gone for good")
    revoked = kit.reload(credential)
    assert revoked.status == CredentialStatus.REVOKED
    assert (revoked.suspended_at, revoked.suspension_reason) == (None, "")


def test_the_dashboard_revokes_a_suspended_credential(kit, owner, member):
    credential, _secret = kit.create(owner=member)
    credential_suspend(credential=credential, actor=owner, reason=SuspensionReason.MANUAL)
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    response = client.post(kit.url(credential, "revoke"), {"reason": "no longer needed"})
    assert response.status_code == 302, response.status_code
    assert kit.reload(credential).status == CredentialStatus.REVOKED


@pytest.fixture(scope="module")
def signer():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize("reason", [SuspensionReason.ORPHANED, SuspensionReason.REVIEW_OVERDUE])
def test_a_leak_report_revokes_a_suspended_api_key(
    settings, signer, client, organization, owner, member, scopes, reason
):
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = keys_document((KEY_ID, signer))
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE = ""
    key, secret = make_api_key(organization, member)
    credential_suspend(credential=key, actor=owner, reason=reason)
    body = json.dumps([entry(secret)]).encode()
    response = client.post(
        URL,
        data=body,
        content_type="application/json",
        headers={"Github-Public-Key-Identifier": KEY_ID, "Github-Public-Key-Signature": sign(body, signer)},
    )
    assert response.status_code == 200, response.content
    key.refresh_from_db()
    assert key.status == CredentialStatus.REVOKED
    assert LeakReport.objects.filter(object_id=key.pk).exists()
