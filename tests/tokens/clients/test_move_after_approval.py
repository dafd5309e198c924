"""A move under approval, between its approval and its first secret: the key expiring meanwhile
refuses the secret (it would be dead when shown), and a withdrawal leaves the move undone, so the
key may be moved again (docs/choosing.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.governance.approvals import credential_request_approve, credential_secret_issue
from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.clients.services import m2m_app_revoke
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def approved_move(organization, owner, admin_user, make_key):
    """A key moved under approval, approved; its owner has not generated the secret yet."""
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, _ = make_key(name="exporter", expires_at=timezone.now() + timedelta(days=2))
    move = api_key_move_to_m2m_app(api_key=key, actor=owner, justification="switching to OAuth")
    credential_request_approve(request=move.request, actor=admin_user)
    return key, move


def _key_expired(key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(hours=1))


def test_the_first_secret_is_refused_once_the_key_it_replaces_has_expired(owner, approved_move):
    """The first secret expires no later than the key would have (api-keys.md): after the key's
    expiry it would be dead before it is shown, so it is refused with the way out instead."""
    key, move = approved_move
    _key_expired(key)
    with pytest.raises(ValidationError) as refused:
        credential_secret_issue(credential=M2MApplication.objects.get(pk=move.application.pk), actor=owner)
    assert refused.value.code == "key_expired"
    assert "new M2M application" in " ".join(refused.value.messages)
    application = M2MApplication.objects.get(pk=move.application.pk)
    assert application.status == "pending" and not application.secrets.exists()


def test_the_dashboard_says_why_the_first_secret_is_refused(owner_client, approved_move):
    key, move = approved_move
    _key_expired(key)
    response = owner_client.post(f"/orgs/acme/apps/{move.application.pk}/issue-secret/")
    assert response.status_code == 302
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("expired" in text and "new M2M application" in text for text in shown), shown
    assert not M2MApplication.objects.get(pk=move.application.pk).secrets.exists()


def test_the_first_secret_is_issued_while_the_key_lives(owner, approved_move):
    key, move = approved_move
    application, _plaintext = credential_secret_issue(credential=move.application, actor=owner)
    assert application.status == "active"
    assert timezone.now() < application.secrets.get().expires_at <= key.expires_at


def test_a_move_withdrawn_after_approval_but_before_any_secret_can_be_made_again(
    owner, admin_client_org, approved_move
):
    """The approvals queue's Revoke on an approved application that never had a secret: the move
    never happened, so the application ends `denied` (as a never-issued key does) and the key may be
    moved again (choosing.md: "a move whose application was denied or withdrawn can be made again")."""
    key, move = approved_move
    response = admin_client_org.post(f"/orgs/acme/approvals/{move.request.pk}/revoke/")
    assert response.status_code == 302
    withdrawn = M2MApplication.objects.get(pk=move.application.pk)
    assert (withdrawn.status, withdrawn.revoked_at) == ("denied", None)
    again = api_key_move_to_m2m_app(api_key=ApiKey.objects.get(pk=key.pk), actor=owner, justification="again")
    assert again.application.status == "pending"


def test_revoking_an_approved_application_without_a_secret_denies_it(owner, approved_move):
    """As api_key_revoke: no secret ever existed, so it ends `denied`, audited as `never_issued`."""
    _key, move = approved_move
    application = m2m_app_revoke(application=move.application, actor=owner)
    assert (application.status, application.revoked_at) == ("denied", None)
    event = AuditEvent.objects.filter(action="tokens.m2m_app.revoked").get()
    assert event.extra["never_issued"] is True


def test_revoking_an_application_with_a_secret_still_revokes_it(owner, approved_move):
    _key, move = approved_move
    credential_secret_issue(credential=move.application, actor=owner)
    application = m2m_app_revoke(application=move.application, actor=owner)
    assert application.status == "revoked" and application.revoked_at is not None
    assert "never_issued" not in AuditEvent.objects.filter(action="tokens.m2m_app.revoked").get().extra
