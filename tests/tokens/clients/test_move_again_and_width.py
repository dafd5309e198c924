"""Moving a key again after a denied move (docs/choosing.md: "a move whose application was denied
or withdrawn can be made again"), and the moved application no wider than the key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from credentials.governance.approvals import credential_request_deny
from credentials.governance.org_policy import policy_update
from tokens.clients.moves import api_key_move_to_m2m_app
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def denied_move(organization, owner, admin_user, make_key):
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, _ = make_key(name="exporter")
    move = api_key_move_to_m2m_app(api_key=key, actor=owner, justification="switching to OAuth")
    credential_request_deny(request=move.request, actor=admin_user, comment="use a better name")
    assert M2MApplication.objects.get(pk=move.application.pk).status == "denied"
    return key, move.application


def test_the_key_page_offers_the_move_again_after_a_denied_move(owner_client, denied_move):
    key, _denied = denied_move
    html = owner_client.get(f"/orgs/acme/api-keys/{key.key_id}/").content.decode()
    assert f"/orgs/acme/api-keys/{key.key_id}/move/" in html, "no 'Move to an M2M application' link"


def test_the_dashboard_move_can_be_made_again_after_a_denied_move(owner_client, denied_move):
    key, denied = denied_move
    response = owner_client.post(
        f"/orgs/acme/api-keys/{key.key_id}/move/",
        {"name": "exporter (M2M)", "justification": "second try, better name"},
    )
    again = M2MApplication.objects.filter(moved_from_key=key).exclude(pk=denied.pk).first()
    page = response.content.decode()
    assert again is not None, "already moved" if "already moved" in page else page[:500]
    assert again.status == "pending"


def test_the_moved_applications_secret_expires_no_later_than_the_key(owner, make_key):
    expires = timezone.now() + timedelta(days=7)
    key, _ = make_key(name="exporter", expires_at=expires)
    move = api_key_move_to_m2m_app(api_key=key, actor=owner)
    secret = move.application.secrets.get()
    # The key stops in 7 days; the standing secret that replaces it must not live longer.
    assert secret.expires_at is not None and secret.expires_at <= expires, secret.expires_at
