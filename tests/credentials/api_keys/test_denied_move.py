"""A denied (or withdrawn) move never happened (docs/choosing.md): the inventory does not say the key
was moved, and the key has no cut-over, as on the key's own page."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from credentials.api_keys.cutover import api_key_cutover_complete, api_key_cutover_set, cutover_for
from credentials.api_keys.models import ApiKey
from credentials.governance.approvals import credential_request_deny
from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent
from tokens.clients.moves import api_key_move_to_m2m_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def denied_move(organization, owner, admin_user, make_key):
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, _ = make_key(name="exporter")
    move = api_key_move_to_m2m_app(api_key=key, actor=owner, justification="switching to OAuth")
    credential_request_deny(request=move.request, actor=admin_user, comment="not now")
    return ApiKey.objects.get(pk=key.pk), move.application


def test_the_inventory_does_not_say_moved_to_after_a_denied_move(owner_client, denied_move):
    key, denied = denied_move
    rows = {r["id"]: r for r in owner_client.get("/api/v1/orgs/acme/inventory/").json()["results"]}
    assert "moved_to" not in rows[key.key_id], rows[key.key_id]
    html = owner_client.get("/orgs/acme/inventory/").content.decode()
    assert f'Moved to <a href="/orgs/acme/apps/{denied.pk}/">' not in html


def test_the_inventory_says_moved_to_for_a_pending_move(organization, owner, owner_client, make_key):
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    key, _ = make_key(name="exporter")
    move = api_key_move_to_m2m_app(api_key=key, actor=owner, justification="switching to OAuth")
    rows = {r["id"]: r for r in owner_client.get("/api/v1/orgs/acme/inventory/").json()["results"]}
    assert rows[key.key_id]["moved_to"] == {"kind": "m2m_app", "id": move.application.client_id}
    html = owner_client.get("/orgs/acme/inventory/").content.decode()
    assert f'Moved to <a href="/orgs/acme/apps/{move.application.pk}/">' in html


def test_a_key_whose_move_was_denied_has_no_cut_over(owner, owner_client, denied_move):
    """choosing.md: "A key that was never moved has no cut-over; the two dashboard actions say so."""
    key, _denied = denied_move
    assert cutover_for(key) is None
    for attempt in (
        lambda: api_key_cutover_set(api_key=key, actor=owner, quiet_hours=1, auto_revoke=True),
        lambda: api_key_cutover_complete(api_key=key, actor=owner),
    ):
        with pytest.raises(ValidationError) as refused:
            attempt()
        assert refused.value.code == "not_moved"
    assert not AuditEvent.objects.filter(action__startswith="credentials.api_key.cutover").exists()
    assert ApiKey.objects.get(pk=key.pk).status == "active"
