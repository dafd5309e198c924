"""A decision refused for its comment says so, not "Choose approve or deny." (the decision was there)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from credentials.governance.models import RequestState
from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent
from tests.credentials.governance.test_approvals import _members_export_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(organization, owner, member, scopes):
    """Return the member's request for a key, waiting for a decision."""
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    _key, request = _members_export_request(organization, member)
    return request


def _refused(client, request, data) -> str:
    """Post a decision; check it changed nothing and return the flashed message."""
    before = AuditEvent.objects.count()
    url = reverse("org-request-decide", kwargs={"org_slug": "acme", "request_id": request.pk})
    response = client.post(url, data, follow=True)
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and AuditEvent.objects.count() == before
    return " ".join(str(m) for m in response.context["messages"])


@pytest.mark.parametrize(
    ("comment", "said"),
    [
        ("x" * 501, "Comment: Ensure this value has at most 500 characters (it has 501)."),
        ("looks fine\x00", "Comment: Null characters are not allowed."),
    ],
    ids=["too-long", "nul"],
)
def test_a_refused_comment_is_named(recent_owner_client, waiting, comment, said):
    assert _refused(recent_owner_client, waiting, {"decision": "approve", "comment": comment}) == said


@pytest.mark.parametrize("data", [{}, {"decision": "APPROVE"}, {"decision": "", "comment": "x" * 501}])
def test_a_missing_decision_still_asks_for_one(recent_owner_client, waiting, data):
    assert _refused(recent_owner_client, waiting, data) == "Choose approve or deny."
