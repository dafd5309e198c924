"""An approved credential whose secret the policy no longer lets its owner generate is not stuck
`pending` for ever: it can be revoked (it ends `denied`, never having had a secret, either kind);
and an approval checks the maximum lifetime the issue will check."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_request
from credentials.governance import reviews
from credentials.governance.approvals import (
    credential_request_approve,
    credential_request_deny,
    credential_secret_issue,
)
from credentials.governance.models import CredentialRequest
from credentials.governance.org_policy import policy_update
from tokens.clients.services import m2m_app_request, m2m_app_revoke

pytestmark = pytest.mark.django_db


def _approved_then_unissuable(organization, owner, admin_user, member, **later_policy):
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    key, request = api_key_request(
        organization=organization,
        name="waiting",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="nightly export",
        environment="live",
        lifetime_days=365,
    )
    credential_request_approve(request=request, actor=admin_user)
    policy_update(organization=organization, actor=owner, **later_policy)
    with pytest.raises(ValidationError):
        credential_secret_issue(credential=key, actor=member)
    return key, request


@pytest.mark.parametrize(
    "later_policy",
    [{"new_live_api_keys": "forbidden"}, {"api_key_max_lifetime_days": 30}],
    ids=["live-keys-forbidden", "max-lifetime-shortened"],
)
def test_an_approver_can_close_an_approved_key_that_can_no_longer_be_issued(
    organization, owner, admin_user, member, scopes, later_policy
):
    key, request = _approved_then_unissuable(organization, owner, admin_user, member, **later_policy)
    closed = False
    errors = []
    # Every way an approver has: deny the request, revoke the credential (what the approvals
    # screen's "Revoke" does for a decided request).
    for attempt in (
        lambda: credential_request_deny(request=request, actor=owner),
        lambda: reviews.credential_revoke(credential=key, actor=owner, reason="cannot be issued"),
    ):
        try:
            attempt()
            closed = True
            break
        except ValidationError as exc:
            errors.append(" ".join(exc.messages))
    key = ApiKey.objects.get(pk=key.pk)
    assert closed and key.status != "pending", (key.status, errors)


def test_an_approval_checks_the_maximum_lifetime_the_issue_will_check(
    organization, owner, admin_user, member, scopes
):
    """Requested for 365 days, then the organisation allows 30: the approval should be refused
    (the request stays pending, an approver denies it), as it is for the policy on kinds."""
    policy_update(organization=organization, actor=owner, approve_new_api_keys=True)
    key, request = api_key_request(
        organization=organization,
        name="waiting",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="nightly export",
        environment="live",
        lifetime_days=365,
    )
    policy_update(organization=organization, actor=owner, api_key_max_lifetime_days=30)
    try:
        credential_request_approve(request=request, actor=admin_user)
    except ValidationError:
        assert CredentialRequest.objects.get(pk=request.pk).state == "pending"
        return
    # Approved: then the owner must be able to generate the secret it was approved for.
    credential_secret_issue(credential=key, actor=member)


def test_an_approved_application_never_issued_can_be_revoked(organization, owner, admin_user, member, scopes):
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    application, request = m2m_app_request(
        organization=organization,
        name="waiting",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="nightly export",
    )
    with pytest.raises(ValidationError) as refused:
        m2m_app_revoke(application=application, actor=owner)  # still waiting: deny it instead
    assert refused.value.code == "inactive"
    credential_request_approve(request=request, actor=admin_user)
    assert m2m_app_revoke(application=application, actor=owner).status == "denied"


def _requested(kind, organization, owner, member):
    """Return a credential of `kind` requested for `member` under approval, and its request."""
    policy_update(
        organization=organization, actor=owner, approve_new_api_keys=True, approve_new_m2m_apps=True
    )
    request_new = api_key_request if kind == "api_key" else m2m_app_request
    credential, request = request_new(
        organization=organization,
        name="job",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="needed",
    )
    return credential, request


@pytest.mark.parametrize("kind", ["api_key", "m2m_app"])
def test_generating_the_secret_of_a_withdrawn_credential_says_it_was_withdrawn(
    kind, organization, owner, admin_user, member, scopes
):
    """Approved, then revoked before its owner generated the secret (it ends `denied`): "Generate"
    says so (`withdrawn`), not "The secret was already generated" (`issued`), which is false."""
    credential, request = _requested(kind, organization, owner, member)
    credential_request_approve(request=request, actor=admin_user)
    reviews.credential_revoke(credential=credential, actor=admin_user, reason="not needed after all")
    credential = type(credential).objects.get(pk=credential.pk)
    assert credential.status == "denied"
    with pytest.raises(ValidationError) as refused:
        credential_secret_issue(credential=credential, actor=member)
    assert refused.value.code == "withdrawn"
    assert refused.value.messages == ["This credential was withdrawn before its secret was generated."]


def test_generating_the_secret_of_a_denied_credential_says_it_was_denied(
    organization, owner, admin_user, member, scopes
):
    credential, request = _requested("api_key", organization, owner, member)
    credential_request_deny(request=request, actor=admin_user)
    with pytest.raises(ValidationError) as refused:
        credential_secret_issue(credential=ApiKey.objects.get(pk=credential.pk), actor=member)
    assert refused.value.code == "denied"
    assert "already generated" not in " ".join(refused.value.messages)
