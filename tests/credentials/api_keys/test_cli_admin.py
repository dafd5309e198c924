"""The `create_api_key` command and the admin (no secret material, no creation, revoke and reassign)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from credentials.api_keys.verification import api_key_verify
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def _create(*args):
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue()


def test_create_api_key_json(owner, scopes):
    out = _create(
        "--org",
        "acme",
        "--name",
        "ci",
        "--owner",
        owner.email,
        "--scopes",
        "orders:read orders:write",
        "--expires-in-days",
        "10",
        "--json",
    )
    body = json.loads(out)
    assert body["id"] == body["key"][9:21]
    result = api_key_verify(body["key"])
    assert result.valid and result.principal().scopes == {"orders:read", "orders:write"}
    assert result.expires_at is not None
    assert ApiKey.objects.get(key_id=body["id"]).owner == owner
    assert AuditEvent.objects.get(action="credentials.api_key.created").extra["via"] == "cli"


def test_create_api_key_plain_output(owner, scopes):
    out = _create("--org", "acme", "--name", "ci", "--owner", owner.email)
    key = out.strip().splitlines()[-1]
    assert api_key_verify(key).valid


@pytest.mark.parametrize(
    "args, message",
    [
        (["--org", "nope", "--name", "x", "--owner", "owner@acme.test"], "No organisation"),
        (["--org", "acme", "--name", "x", "--owner", "ghost@acme.test"], "No user"),
        (["--org", "acme", "--name", "x", "--owner", "owner@globex.test"], "member"),
        (["--org", "acme", "--name", "x", "--owner", "owner@acme.test", "--scopes", "nope:x"], "catalogue"),
        (["--org", "acme", "--name", "x", "--owner", "owner@acme.test", "--expires-in-days", "0"], "between"),
    ],
)
def test_create_api_key_errors(args, message, owner, outsider, scopes):
    with pytest.raises(CommandError, match=message):
        _create(*args)
    assert not ApiKey.objects.exists()


def test_admin_shows_no_secret_material_and_cannot_create(staff_client, make_key):
    api_key, plaintext = make_key()
    listing = staff_client.get(reverse("admin:credentials_apikey_changelist") + "?state=active&q=job")
    assert (
        listing.status_code == 200 and f"{api_key.display_prefix}…{api_key.last4}" in listing.content.decode()
    )
    change = staff_client.get(reverse("admin:credentials_apikey_change", args=[api_key.pk])).content.decode()
    assert api_key.digest not in change and plaintext[21:-6] not in change
    assert staff_client.get(reverse("admin:credentials_apikey_add")).status_code == 403


def test_admin_revoke_action(staff_client, make_key):
    api_key, plaintext = make_key()
    response = staff_client.post(
        reverse("admin:credentials_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [api_key.pk]},
    )
    assert response.status_code == 302
    assert api_key_verify(plaintext).code == "revoked"
    assert AuditEvent.objects.get(action="credentials.api_key.revoked").extra["via"] == "admin"


def test_admin_reassigns_owner_only_within_the_organisation(staff_client, make_key, member, outsider):
    api_key, _ = make_key()
    change_url = reverse("admin:credentials_apikey_change", args=[api_key.pk])
    response = staff_client.post(change_url, {"owner": outsider.pk})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.owner != outsider
    response = staff_client.post(change_url, {"owner": member.pk})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.owner == member
    event = AuditEvent.objects.get(action="credentials.api_key.updated")
    assert event.extra["owner"]["to"] == member.email


def test_admin_reassign_action(staff_client, make_key, member, outsider, other_organization):
    first, _ = make_key(name="one")
    second, _ = make_key(name="two")
    changelist = reverse("admin:credentials_apikey_changelist")
    page = staff_client.post(
        changelist, {"action": "reassign_owner", "_selected_action": [first.pk, second.pk]}
    )
    assert page.status_code == 200 and member.email in page.content.decode()
    assert outsider.email not in page.content.decode()
    refused = staff_client.post(
        changelist,
        {
            "action": "reassign_owner",
            "_selected_action": [first.pk, second.pk],
            "apply": "1",
            "owner": outsider.pk,
        },
    )
    assert refused.status_code == 200
    first.refresh_from_db()
    assert first.owner != outsider
    done = staff_client.post(
        changelist,
        {
            "action": "reassign_owner",
            "_selected_action": [first.pk, second.pk],
            "apply": "1",
            "owner": member.pk,
        },
    )
    assert done.status_code == 302
    assert set(ApiKey.objects.values_list("owner", flat=True)) == {member.pk}
    # Reassignment goes through the governance service (shared with M2M applications).
    assert (
        AuditEvent.objects.filter(action="credentials.api_key.owner_reassigned", actor__is_staff=True).count()
        == 2
    )
