"""Moving a key: after a denied move, under approval (the quiet period starts at the first
secret), and rotation of a moved key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from credentials.api_keys import cutover
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_rotate
from credentials.api_keys.verification import api_key_verify
from credentials.governance.approvals import (
    credential_request_approve,
    credential_request_cancel,
    credential_request_deny,
    credential_secret_issue,
)
from credentials.governance.org_policy import policy_update
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.clients.services import m2m_app_revoke
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("outcome", ["denied", "cancelled"])
def test_a_move_whose_application_was_refused_can_be_made_again(
    organization, owner, admin_user, make_key, outcome
):
    """The move never happened (the application never had a secret): the key is not "moved"."""
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, _ = make_key()
    move = api_key_move_to_m2m_app(api_key=key, actor=owner, justification="switching to OAuth")
    if outcome == "denied":
        credential_request_deny(request=move.request, actor=admin_user, comment="use a better name")
    else:
        credential_request_cancel(request=move.request, actor=owner)
    assert M2MApplication.objects.get(pk=move.application.pk).status == "denied"
    try:
        again = api_key_move_to_m2m_app(api_key=key, actor=owner, justification="second try")
    except ValidationError as exc:
        pytest.fail(f"refused after the first move was {outcome}: {exc.code}: {' '.join(exc.messages)}")
    assert again.application.status == "pending"


def test_the_auto_revoke_does_not_fire_the_moment_a_pending_application_gets_its_secret(
    organization, owner, admin_user, make_key
):
    """A weekly job's key is moved under approval; the approval takes five days. The key is what
    the service uses until the application has a secret: the quiet period cannot have passed
    before the owner could even configure the service with the new client secret."""
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, plaintext = make_key(name="weekly")
    move = api_key_move_to_m2m_app(api_key=key, actor=owner, justification="switching to OAuth")
    ApiKey.objects.filter(pk=key.pk).update(cutover_auto_revoke=True, cutover_quiet_hours=24)
    # The move and the last use (the weekly run, an hour before the move) were five days ago.
    five_days_ago = timezone.now() - timedelta(days=5)
    M2MApplication.objects.filter(pk=move.application.pk).update(created=five_days_ago)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=five_days_ago - timedelta(hours=1))

    credential_request_approve(request=move.request, actor=admin_user)
    credential_secret_issue(credential=move.application, actor=owner)  # the secret exists from now

    revoked = cutover.cutovers_complete()
    key.refresh_from_db()
    assert not revoked and key.status == "active", (
        "the key was revoked seconds after its application got a secret, before the service could switch"
    )
    assert api_key_verify(plaintext).valid


def test_a_moved_key_is_not_rotated_while_its_application_lives(organization, owner, make_key):
    """Rotating a moved key handed the integration to a successor nothing links to the
    application: the cut-over read "complete" and the successor could be moved a second time."""
    key, _ = make_key()
    application = api_key_move_to_m2m_app(api_key=key, actor=owner).application
    with pytest.raises(ValidationError) as refused:
        api_key_rotate(api_key=key, actor=owner, overlap=timedelta(0))
    assert refused.value.code == "moved"
    # Once the application is revoked the move is over: the key is a key again.
    m2m_app_revoke(application=application, actor=owner)
    successor, _ = api_key_rotate(api_key=key, actor=owner, overlap=timedelta(0))
    assert successor.state == "active"
