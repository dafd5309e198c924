"""A key whose secret was reported leaked is not moved, even once staff restored it.

docs/leak-reports.md: after a restore the portal insists the leaked secret stops at once (a
rotation with an overlap is refused, `leaked`). A move kept the key working through an
open-ended cut-over, and then refused the zero-overlap rotation the leak notice asks for
(`moved`): the public secret stayed good until someone revoked the key by hand.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from credentials.governance.models import LeakedCredentialAction
from credentials.governance.org_policy import policy_update
from credentials.governance.reviews import credential_restore
from credentials.leaks.services import ReportedToken, leak_report_receive
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def leaked_and_restored_key(organization, owner, make_key):
    """A key suspended by a leak report and restored by the portal's staff: its secret is public."""
    policy_update(
        organization=organization, actor=owner, leaked_credential_action=LeakedCredentialAction.SUSPEND
    )
    key, plaintext = make_key(name="leaky")
    leak_report_receive(
        reported=ReportedToken(token=plaintext, token_type="api_key", url="https://gist.example/1")
    )
    key.refresh_from_db()
    assert key.status == "suspended" and key.suspension_reason == "leaked"
    credential_restore(credential=key, actor=None)  # staff restore it (docs/leak-reports.md)
    key.refresh_from_db()
    assert key.status == "active"
    return key


def test_the_service_refuses_to_move_it(owner, leaked_and_restored_key):
    with pytest.raises(ValidationError) as excinfo:
        api_key_move_to_m2m_app(api_key=leaked_and_restored_key, actor=owner, via="dashboard")
    assert excinfo.value.code == "leaked"
    assert not M2MApplication.objects.exists()


def test_the_rest_move_is_409_leaked(owner_client, leaked_and_restored_key):
    response = owner_client.post(
        f"/api/v1/orgs/acme/api-keys/{leaked_and_restored_key.key_id}/move-to-m2m-app/",
        {},
        content_type="application/json",
    )
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "leaked"
    assert not M2MApplication.objects.exists()


def test_the_dashboard_move_says_why(owner_client, leaked_and_restored_key):
    response = owner_client.post(
        f"/orgs/acme/api-keys/{leaked_and_restored_key.key_id}/move/",
        {"name": "leaky (M2M)", "justification": "switching"},
    )
    assert response.status_code == 400  # the form again, with the refusal on it
    assert "reported leaked in public" in response.content.decode()
    assert not M2MApplication.objects.exists()


def test_its_zero_overlap_successor_can_be_moved(owner, leaked_and_restored_key):
    """What the message advises works: rotate with no overlap, then move the successor."""
    from credentials.api_keys.services import api_key_rotate

    successor, _plaintext = api_key_rotate(api_key=leaked_and_restored_key, actor=owner, overlap=timedelta(0))
    move = api_key_move_to_m2m_app(api_key=successor, actor=owner, via="dashboard")
    assert move.application.moved_from_key_id == successor.pk
