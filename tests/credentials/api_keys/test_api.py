"""The REST management API: session (with CSRF) or an API key with `api_keys:manage`, tenant-isolated."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_request
from credentials.api_keys.verification import api_key_verify
from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def url(org="acme", key_id=None, action=None):
    base = f"/api/v1/orgs/{org}/api-keys/"
    if key_id:
        base += f"{key_id}/"
    if action:
        base += f"{action}/"
    return base


@pytest.fixture
def manager_key(make_key):
    # It may only make keys no wider than itself (portal.authz), so it also holds orders:read.
    return make_key(name="automation", scopes=["api_keys:manage", "orders:read"])


def test_session_user_creates_lists_updates_rotates_and_revokes(owner_client, owner, member, scopes):
    response = owner_client.post(
        url(),
        {"name": "billing", "scopes": ["orders:read"], "environment": "test", "expires_in_days": 30},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    plaintext = body["key"]
    assert plaintext.startswith("ipk_test_") and body["id"] == plaintext[9:21]
    assert body["owner"] == owner.email and body["scopes"] == ["orders:read"] and body["status"] == "active"
    assert body["prefix"] == f"ipk_test_{body['id']}" and body["last4"] == plaintext[-4:]
    assert api_key_verify(plaintext).valid

    listed = owner_client.get(url()).json()
    assert listed["count"] == 1 and "key" not in listed["results"][0]
    assert "key" not in owner_client.get(url(key_id=body["id"])).json()

    response = owner_client.patch(
        url(key_id=body["id"]),
        {"name": "billing v2", "owner": member.email, "scopes": ["orders:read", "orders:write"]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["owner"] == member.email
    assert api_key_verify(plaintext).principal().scopes == {"orders:read", "orders:write"}

    response = owner_client.post(
        url(key_id=body["id"], action="rotate"), {"overlap_hours": 2}, "application/json"
    )
    assert response.status_code == 201, response.content
    successor = response.json()["successor"]
    assert successor["key"] != plaintext and successor["replaces"] == body["id"]
    assert successor["name"] == "billing v2" and successor["owner"] == member.email
    assert response.json()["rotated"]["status"] == "active"  # inside its overlap
    again = owner_client.post(url(key_id=body["id"], action="rotate"), {}, "application/json")
    assert again.status_code == 409

    response = owner_client.post(
        url(key_id=successor["id"], action="revoke"), {"reason": "done"}, "application/json"
    )
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert api_key_verify(successor["key"]).code == "revoked"
    assert (
        owner_client.post(
            url(key_id=successor["id"], action="revoke"), {"reason": "x"}, "application/json"
        ).status_code
        == 409
    )
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-4:] == [
        "credentials.api_key.created",
        "credentials.api_key.updated",
        "credentials.api_key.rotated",
        "credentials.api_key.revoked",
    ]


def test_session_requests_need_csrf(owner, scopes):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(url(), {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not ApiKey.objects.exists()


def test_bad_input_gets_field_errors(owner_client, outsider, scopes):
    response = owner_client.post(
        url(), {"name": "", "scopes": ["nope:read"]}, content_type="application/json"
    )
    assert response.status_code == 400 and "name" in response.json()
    response = owner_client.post(
        url(), {"name": "x", "scopes": ["nope:read"]}, content_type="application/json"
    )
    assert response.status_code == 400 and "scopes" in response.json()
    response = owner_client.post(
        url(), {"name": "x", "owner": outsider.email}, content_type="application/json"
    )
    assert response.status_code == 400 and "owner" in response.json()
    response = owner_client.post(url(), {"name": "x", "environment": "prod"}, content_type="application/json")
    assert response.status_code == 400 and "environment" in response.json()


def test_a_pending_keys_scopes_stay_what_its_request_names(owner_client, organization, member, scopes):
    """The approver decides on the scopes the request names: they cannot change under it."""
    key, request = api_key_request(
        organization=organization,
        name="needs approval",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="nightly export",
    )
    wider = owner_client.patch(
        url(key_id=key.key_id), {"scopes": ["orders:read", "orders:write"]}, content_type="application/json"
    )
    assert (wider.status_code, wider.json()["code"]) == (409, "inactive"), wider.content
    renamed = owner_client.patch(url(key_id=key.key_id), {"name": "export"}, content_type="application/json")
    assert renamed.status_code == 200, renamed.content
    key.refresh_from_db()
    assert (key.name, key.scopes, request.requested_scopes) == ("export", ["orders:read"], ["orders:read"])


def test_a_rotated_keys_scopes_cannot_change_its_successors_stay_as_they_are(owner_client, owner, make_key):
    """Narrowing a key rotated meanwhile would leave the successor in use as wide as before: 409
    `rotated`, as for a scope increase; a rename still works."""
    key, _ = make_key(scopes=["orders:read", "orders:write"])
    rotated = owner_client.post(url(key_id=key.key_id, action="rotate"), {}, "application/json")
    assert rotated.status_code == 201
    narrowed = owner_client.patch(url(key_id=key.key_id), {"scopes": ["orders:read"]}, "application/json")
    assert (narrowed.status_code, narrowed.json()["code"]) == (409, "rotated"), narrowed.content
    renamed = owner_client.patch(url(key_id=key.key_id), {"name": "retiring"}, "application/json")
    assert renamed.status_code == 200, renamed.content
    key.refresh_from_db()
    assert (key.name, key.scopes) == ("retiring", ["orders:read", "orders:write"])
    assert ApiKey.objects.get(replaces=key).scopes == ["orders:read", "orders:write"]


def test_api_key_with_manage_scope_manages_its_own_organisation(manager_key, owner, api_key_client):
    _row, plaintext = manager_key
    client = api_key_client(plaintext)
    response = client.post(url(), {"name": "by machine", "scopes": ["orders:read"]}, "application/json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["owner"] == owner.email  # the calling key's owner
    event = AuditEvent.objects.get(
        action="credentials.api_key.created", target_id=str(ApiKey.objects.get(key_id=created["id"]).pk)
    )
    assert event.actor == owner and event.extra["via"] == f"api_key:{plaintext[9:21]}"
    assert client.get(url()).json()["count"] == 2
    response = client.post(url(key_id=created["id"], action="revoke"), {"reason": "r"}, "application/json")
    assert response.status_code == 200


def test_api_key_without_manage_scope_is_403(make_key, api_key_client):
    _row, plaintext = make_key(scopes=["orders:read"])
    response = api_key_client(plaintext).get(url())
    assert response.status_code == 403
    assert "api_keys:manage" in response.json()["detail"]


def test_anonymous_is_401_with_bearer_challenge(client, organization):
    response = client.get(url())
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_tenant_isolation(
    manager_key, make_key, api_key_client, other_organization, outsider, owner_client, scopes
):
    _row, plaintext = manager_key
    theirs, _their_plain = make_key(organization=other_organization, owner=outsider, name="globex key")
    client = api_key_client(plaintext)
    # An org-A key cannot reach org B at all…
    assert client.get(url("globex")).status_code == 404
    assert client.post(url("globex"), {"name": "x"}, "application/json").status_code == 404
    assert client.get(url("globex", theirs.key_id)).status_code == 404
    assert (
        client.post(url("globex", theirs.key_id, "revoke"), {"reason": "x"}, "application/json").status_code
        == 404
    )
    # …nor org B's keys under its own organisation's URL.
    assert client.get(url("acme", theirs.key_id)).status_code == 404
    assert client.post(url("acme", theirs.key_id, "rotate"), {}, "application/json").status_code == 404
    assert client.patch(url("acme", theirs.key_id), {"name": "x"}, "application/json").status_code == 404
    # A session user likewise.
    assert owner_client.get(url("globex")).status_code == 404
    assert owner_client.get(url("acme", theirs.key_id)).status_code == 404
    assert (
        owner_client.post(
            url("acme", theirs.key_id, "revoke"), {"reason": "x"}, "application/json"
        ).status_code
        == 404
    )
    theirs.refresh_from_db()
    assert theirs.status == "active" and theirs.name == "globex key"
    assert "globex key" not in owner_client.get(url()).content.decode()


def test_members_manage_only_their_own_keys(member_client, member, owner, make_key):
    owners_key, _ = make_key(name="owner's")
    response = member_client.post(
        url(key_id=owners_key.key_id, action="revoke"), {"reason": "x"}, "application/json"
    )
    assert response.status_code == 403
    response = member_client.post(url(), {"name": "mine", "owner": owner.email}, "application/json")
    assert response.status_code == 403
    response = member_client.post(url(), {"name": "mine"}, "application/json")
    assert response.status_code == 201 and response.json()["owner"] == member.email
    mine = response.json()["id"]
    assert member_client.post(url(key_id=mine, action="rotate"), {}, "application/json").status_code == 201


def test_list_filters_and_pagination(owner_client, make_key, member):
    for i in range(3):
        make_key(name=f"alpha {i}")
    make_key(name="beta", owner=member, environment="test")
    assert owner_client.get(url() + "?search=alpha").json()["count"] == 3
    assert owner_client.get(url() + "?environment=test").json()["count"] == 1
    assert owner_client.get(url() + f"?owner={member.email}").json()["count"] == 1
    assert owner_client.get(url() + "?status=revoked").json()["count"] == 0
    assert owner_client.get(url() + "?status=active").json()["count"] == 4
    one = ApiKey.objects.filter(name="beta").get()
    assert owner_client.get(url() + f"?search={one.display_prefix}").json()["count"] == 1


@pytest.mark.parametrize("count", [2, 30])
def test_list_query_count_is_constant(count, owner_client, make_key, member, django_assert_max_num_queries):
    for i in range(count):
        make_key(name=f"k{i}", owner=member)
    # session + user + membership + count + page
    with django_assert_max_num_queries(5):
        response = owner_client.get(url())
    assert response.json()["count"] == count


def test_list_query_count_with_api_key(make_key, manager_key, api_key_client, django_assert_max_num_queries):
    _row, plaintext = manager_key
    for i in range(20):
        make_key(name=f"k{i}")
    client = api_key_client(plaintext)
    client.get(url())
    with django_assert_max_num_queries(3):  # organisation + count + page (key verification is cached)
        assert client.get(url()).json()["count"] == 21


def test_rotation_overlap_defaults_to_the_organisation_policy(owner_client, owner, organization, make_key):
    policy_update(organization=organization, actor=owner, default_rotation_overlap_hours=6)
    api_key, _ = make_key()
    response = owner_client.post(url(key_id=api_key.key_id, action="rotate"), {}, "application/json")
    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action="credentials.api_key.rotated")
    assert event.extra["overlap_seconds"] == 6 * 3600
