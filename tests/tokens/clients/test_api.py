"""The M2M applications REST API: sessions and credentials acting for their owners, tenant-isolated."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from credentials.governance.org_policy import policy_update
from portal.models import AuditEvent, Membership
from tests.factories import ScopeFactory, make_api_key
from tests.support.pem import pem_pair
from tests.tokens.conftest import basic
from tokens.clients.services import client_secret_rotate, m2m_app_create
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.django_db


def url(app_id=None, action=None, org="acme"):
    base = f"/api/v1/orgs/{org}/m2m-apps/"
    if app_id is not None:
        base += f"{app_id}/"
    if action:
        base += f"{action}/"
    return base


def token_status(client_id: str, secret: str) -> int:
    return (
        Client()
        .post(
            "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(client_id, secret)
        )
        .status_code
    )


def ec_public_pem() -> str:
    return pem_pair()[1]


@pytest.fixture
def manage_scope(scopes):
    return ScopeFactory(name="m2m_apps:manage")


@pytest.fixture
def key_client(organization, manage_scope):
    """Return `(client, key id)` for a new API key of `owner` with these scopes."""

    def make(owner, scopes=("m2m_apps:manage", "orders:read"), organization=organization):
        row, plaintext = make_api_key(organization, owner, name="automation", scopes=scopes)
        return Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}"), row.key_id

    return make


def create(client, **data):
    return client.post(url(), {"name": "Billing", "scopes": ["orders:read"], **data}, "application/json")


def audit_actions(application_id) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_id=str(application_id), action__startswith="tokens.m2m_app.")
        .order_by("id")
        .values_list("action", flat=True)
    )


# --- the whole lifecycle ----------------------------------------------------------------------


def test_owner_session_creates_reads_updates_rotates_and_revokes(owner_client, owner, member, scopes):
    response = create(owner_client, description="Nightly billing run", token_lifetime=600)
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    client_id, secret = body["client_id"], body["client_secret"]
    assert client_id.startswith("m2m_") and secret.startswith("ips_")
    assert body["owner"] == owner.email and body["created_by"] == owner.email
    assert body["scopes"] == ["orders:read"] and body["status"] == "active"
    assert body["token_endpoint_auth_method"] == "client_secret_basic" and body["token_lifetime"] == 600
    assert body["public_keys"] == [] and len(body["secrets"]) == 1
    assert body["secrets"][0]["hint"] == secret[:8] and body["secrets"][0]["status"] == "active"
    assert token_status(client_id, secret) == 200
    app_id = body["id"]

    # The secret is in the creation response only.
    listed = owner_client.get(url())
    assert listed.json()["count"] == 1 and secret not in listed.content.decode()
    assert "client_secret" not in listed.json()["results"][0]
    shown = owner_client.get(url(app_id))
    assert shown.status_code == 200 and secret not in shown.content.decode()
    assert shown.json()["client_id"] == client_id

    response = owner_client.patch(
        url(app_id),
        {
            "name": "Billing v2",
            "description": "",
            "scopes": ["orders:read", "orders:write"],
            "owner": member.email,
        },
        "application/json",
    )
    assert response.status_code == 200, response.content
    changed = response.json()
    assert changed["name"] == "Billing v2" and changed["description"] == ""
    assert changed["scopes"] == ["orders:read", "orders:write"] and changed["owner"] == member.email

    response = owner_client.post(url(app_id, "rotate-secret"), {"overlap_hours": 2}, "application/json")
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    rotated = response.json()
    new_secret = rotated["client_secret"]
    assert new_secret != secret and rotated["client_id"] == client_id
    assert rotated["secret"]["hint"] == new_secret[:8] and rotated["secret"]["expires_at"] is None
    statuses = {s["id"]: s["status"] for s in rotated["application"]["secrets"]}
    assert sorted(statuses.values()) == ["active", "expiring"]  # the old one inside its overlap
    assert token_status(client_id, secret) == 200 and token_status(client_id, new_secret) == 200

    old_id = next(s["id"] for s in rotated["application"]["secrets"] if s["id"] != rotated["secret"]["id"])
    response = owner_client.post(url(app_id, f"secrets/{old_id}/revoke"))
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert token_status(client_id, secret) == 401 and token_status(client_id, new_secret) == 200
    again = owner_client.post(url(app_id, f"secrets/{old_id}/revoke"))
    assert again.status_code == 409 and again.json()["code"] == "revoked"

    response = owner_client.post(url(app_id, "revoke"))
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert {s["status"] for s in response.json()["secrets"]} == {"revoked"}
    assert token_status(client_id, new_secret) == 401
    assert owner_client.post(url(app_id, "revoke")).json()["code"] == "revoked"
    refused = owner_client.post(url(app_id, "rotate-secret"), {}, "application/json")
    assert refused.status_code == 409 and refused.json()["code"] == "inactive"

    assert audit_actions(app_id) == [
        "tokens.m2m_app.created",
        "tokens.m2m_app.updated",
        "tokens.m2m_app.scopes_changed",
        "tokens.m2m_app.owner_reassigned",
        "tokens.m2m_app.secret_rotated",
        "tokens.m2m_app.secret_revoked",
        "tokens.m2m_app.revoked",
    ]
    events = AuditEvent.objects.filter(target_id=str(app_id), action__startswith="tokens.m2m_app.")
    assert {e.extra.get("via") for e in events} == {"api"}
    assert all(e.actor == owner for e in events)
    assert secret not in json.dumps(list(events.values_list("extra", flat=True)))


def test_rotation_overlap_defaults_to_the_organisation_policy(owner_client, owner, organization, scopes):
    policy_update(organization=organization, actor=owner, default_rotation_overlap_hours=6)
    app_id = create(owner_client).json()["id"]
    response = owner_client.post(url(app_id, "rotate-secret"), {}, "application/json")
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="tokens.m2m_app.secret_rotated")
    assert event.extra["overlap_seconds"] == 6 * 3600


def test_private_key_jwt_applications_and_their_public_keys(owner_client, scopes):
    first = ec_public_pem()
    response = create(owner_client, token_endpoint_auth_method="private_key_jwt", public_key=first)
    assert response.status_code == 201, response.content
    body = response.json()
    assert "client_secret" not in body and body["secrets"] == []
    assert len(body["public_keys"]) == 1 and body["public_keys"][0]["alg"] == "ES256"
    jwk = body["public_keys"][0]["jwk"]
    assert jwk["kty"] == "EC" and "d" not in jwk  # public members only
    app_id = body["id"]
    keys_url = url(app_id, "public-keys")
    assert [k["kid"] for k in owner_client.get(keys_url).json()] == [body["public_keys"][0]["kid"]]

    bad = owner_client.post(keys_url, {"public_key": "not a key"}, "application/json")
    assert bad.status_code == 400 and "public_key" in bad.json()
    response = owner_client.post(
        keys_url, {"public_key": ec_public_pem(), "overlap_hours": 1}, "application/json"
    )
    assert response.status_code == 201, response.content
    listed = owner_client.get(keys_url).json()
    assert sorted(k["status"] for k in listed) == ["active", "expiring"]
    third = owner_client.post(keys_url, {"public_key": ec_public_pem()}, "application/json")
    assert third.status_code == 409 and third.json()["code"] == "too_many"

    old = next(k for k in listed if k["status"] == "expiring")
    response = owner_client.post(url(app_id, f"public-keys/{old['id']}/revoke"))
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert owner_client.post(url(app_id, f"public-keys/{old['id']}/revoke")).status_code == 409

    no_secret = owner_client.post(url(app_id, "rotate-secret"), {}, "application/json")
    assert no_secret.status_code == 409 and no_secret.json()["code"] == "wrong_auth_method"
    secret_app = create(owner_client, name="Secret app").json()["id"]
    no_keys = owner_client.post(url(secret_app, "public-keys"), {"public_key": first}, "application/json")
    assert no_keys.status_code == 409 and no_keys.json()["code"] == "wrong_auth_method"
    assert audit_actions(app_id)[-2:] == [
        "tokens.m2m_app.public_key_added",
        "tokens.m2m_app.public_key_revoked",
    ]


def test_session_requests_need_csrf(owner, scopes):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = create(client)
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert not M2MApplication.objects.exists()


def test_bad_input_gets_field_errors_never_a_500(owner_client, outsider, scopes):
    cases = [
        ({"name": ""}, "name"),
        ({"scopes": ["nope:read"]}, "scopes"),
        ({"owner": outsider.email}, "owner"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "token_endpoint_auth_method"),
        ({"token_lifetime": 10}, "token_lifetime"),
        ({"audiences": ["not a uri"]}, "audiences"),
        ({"public_key": ec_public_pem()}, "public_key"),  # a secret application takes none
        ({"scopes": "orders:read"}, "scopes"),
    ]
    for data, field in cases:
        response = create(owner_client, **data)
        assert response.status_code == 400, (data, response.content)
        assert field in response.json(), (data, response.json())
    assert not M2MApplication.objects.exists()
    app_id = create(owner_client).json()["id"]
    for data, field in [({"overlap_hours": 169}, "overlap_hours"), ({"overlap_hours": -1}, "overlap_hours")]:
        response = owner_client.post(url(app_id, "rotate-secret"), data, "application/json")
        assert response.status_code == 400 and field in response.json()
    response = owner_client.patch(url(app_id), {"scopes": ["nope:read"]}, "application/json")
    assert response.status_code == 400 and "scopes" in response.json()
    assert owner_client.put(url(app_id), {"name": "x"}, "application/json").status_code == 405


# --- who may do what --------------------------------------------------------------------------


def test_members_manage_their_own_applications_only(member_client, member, owner_client, owner, scopes):
    owners_app = create(owner_client).json()["id"]
    refused = member_client.post(url(owners_app, "revoke"))
    assert refused.status_code == 403 and refused.json()["code"] == "not_manager"
    assert member_client.post(url(owners_app, "rotate-secret"), {}, "application/json").status_code == 403
    assert member_client.patch(url(owners_app), {"name": "mine"}, "application/json").status_code == 403
    assert create(member_client, owner=owner.email).json()["code"] == "not_manager"

    response = create(member_client, name="Mine")
    assert response.status_code == 201 and response.json()["owner"] == member.email
    mine = response.json()["id"]
    assert member_client.get(url()).json()["count"] == 2  # everyone sees the organisation's apps
    assert member_client.post(url(mine, "rotate-secret"), {}, "application/json").status_code == 201
    assert member_client.patch(url(mine), {"name": "Mine v2"}, "application/json").status_code == 200
    # Giving an application away is for managers.
    handover = member_client.patch(url(mine), {"owner": owner.email}, "application/json")
    assert handover.status_code == 403 and handover.json()["code"] == "not_manager"
    assert member_client.post(url(mine, "revoke")).status_code == 200
    assert M2MApplication.objects.get(pk=owners_app).status == "active"


def test_an_admin_manages_everyones_applications(admin_client_org, member, member_client, scopes):
    members_app = create(member_client).json()["id"]
    assert (
        admin_client_org.patch(url(members_app), {"name": "Renamed"}, "application/json").status_code == 200
    )
    assert admin_client_org.post(url(members_app, "rotate-secret"), {}, "application/json").status_code == 201
    assert admin_client_org.post(url(members_app, "revoke")).status_code == 200


def test_a_key_with_the_scope_acts_for_its_owner_and_never_wider(owner, key_client, scopes, owner_client):
    client, key_id = key_client(owner)
    response = create(client, name="By machine")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["owner"] == owner.email and created["client_secret"].startswith("ips_")
    event = AuditEvent.objects.get(action="tokens.m2m_app.created", target_id=str(created["id"]))
    assert event.actor == owner and event.extra["via"] == f"api_key:{key_id}"

    wider = create(client, scopes=["orders:read", "orders:write"])
    assert wider.status_code == 403 and wider.json()["code"] == "exceeds_credential"
    widen = client.patch(url(created["id"]), {"scopes": ["orders:write"]}, "application/json")
    assert widen.status_code == 403 and widen.json()["code"] == "exceeds_credential"
    # An application wider than the key is out of its reach altogether, except to revoke it.
    big = create(owner_client, name="Wide", scopes=["orders:read", "orders:write"]).json()["id"]
    assert client.get(url(big)).status_code == 200
    for response in (
        client.post(url(big, "rotate-secret"), {}, "application/json"),
        client.patch(url(big), {"name": "mine now"}, "application/json"),
    ):
        assert response.status_code == 403 and response.json()["code"] == "exceeds_credential"
    # No step-up for a credential: it has nothing to re-authenticate with.
    assert client.post(url(created["id"], "rotate-secret"), {}, "application/json").status_code == 201
    assert client.post(url(big, "revoke")).status_code == 200


def test_a_members_key_reaches_only_the_members_applications(member, owner, key_client, owner_client, scopes):
    client, _key_id = key_client(member)
    owners_app = create(owner_client).json()["id"]
    assert client.post(url(owners_app, "revoke")).json()["code"] == "not_manager"
    assert (
        client.post(url(owners_app, "rotate-secret"), {}, "application/json").json()["code"] == "not_manager"
    )
    assert create(client, owner=owner.email).json()["code"] == "not_manager"
    mine = create(client)
    assert mine.status_code == 201 and mine.json()["owner"] == member.email
    assert client.post(url(mine.json()["id"], "rotate-secret"), {}, "application/json").status_code == 201


def test_a_key_without_the_scope_is_refused(owner, key_client):
    client, _ = key_client(owner, scopes=["orders:read"])
    response = client.get(url())
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope" and "m2m_apps:manage" in response.json()["detail"]


def test_a_key_loses_its_power_when_its_owner_leaves(owner, member, organization, key_client, scopes):
    client, _ = key_client(member)
    assert client.get(url()).status_code == 200
    Membership.objects.filter(user=member, organization=organization).delete()
    response = client.get(url())
    assert response.status_code == 403 and response.json()["code"] == "owner_not_member"


def test_an_access_token_with_the_scope_acts_for_its_applications_owner(owner, owner_client, manage_scope):
    manager = create(owner_client, name="Terraform", scopes=["m2m_apps:manage", "orders:read"]).json()
    token = json.loads(
        Client()
        .post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic(manager["client_id"], manager["client_secret"]),
        )
        .content
    )["access_token"]
    machine = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = create(machine, name="Provisioned")
    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action="tokens.m2m_app.created", target_id=str(response.json()["id"]))
    assert event.actor == owner and event.extra["via"] == f"m2m_app:{manager['client_id']}"


def test_anonymous_is_401_with_a_bearer_challenge(client, organization):
    response = client.get(url())
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


def test_other_organisations_are_404(
    owner, owner_client, key_client, other_organization, outsider, outsider_client, scopes
):
    theirs, _secret = m2m_app_create(
        organization=other_organization, name="Globex service", owner=outsider, actor=outsider
    )
    their_secret = theirs.secrets.get()
    client, _ = key_client(owner)
    mine = create(owner_client).json()["id"]
    for caller in (client, owner_client):
        assert caller.get(url(org="globex")).status_code == 404
        assert caller.post(url(org="globex"), {"name": "x"}, "application/json").status_code == 404
        assert caller.get(url(theirs.pk, org="globex")).status_code == 404
        assert caller.get(url(theirs.pk, org="acme")).status_code == 404
        assert caller.patch(url(theirs.pk, org="acme"), {"name": "x"}, "application/json").status_code == 404
        assert (
            caller.post(url(theirs.pk, "rotate-secret", org="acme"), {}, "application/json").status_code
            == 404
        )
        assert caller.post(url(theirs.pk, "revoke", org="acme")).status_code == 404
        assert caller.post(url(theirs.pk, f"secrets/{their_secret.pk}/revoke", org="acme")).status_code == 404
        # Their secret under one of our applications is not found either.
        assert caller.post(url(mine, f"secrets/{their_secret.pk}/revoke", org="acme")).status_code == 404
        assert "Globex" not in caller.get(url()).content.decode()
    # A key of the other organisation cannot reach this one.
    their_client, _ = key_client(outsider, organization=other_organization)
    assert their_client.get(url(org="acme")).status_code == 404
    assert their_client.get(url(mine, org="acme")).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "active" and theirs.name == "Globex service"
    assert ClientSecret.objects.get(pk=their_secret.pk).revoked_at is None


# --- approval and step-up -----------------------------------------------------------------


def test_approval_required_refuses_creation_with_a_code(
    owner, owner_client, organization, key_client, scopes
):
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    client, _ = key_client(owner)
    for caller in (owner_client, client):
        response = create(caller)
        assert response.status_code == 403 and response.json()["code"] == "approval_required"
    assert not M2MApplication.objects.exists()


def test_approval_of_scope_increases_refuses_widening_not_narrowing(
    owner, owner_client, organization, scopes
):
    app_id = create(owner_client, scopes=["orders:read", "billing:read"]).json()["id"]
    policy_update(organization=organization, actor=owner, approve_scope_increases=True)
    wider = owner_client.patch(url(app_id), {"scopes": ["orders:read", "orders:write"]}, "application/json")
    assert wider.status_code == 403 and wider.json()["code"] == "approval_required"
    narrower = owner_client.patch(url(app_id), {"scopes": ["orders:read"]}, "application/json")
    assert narrower.status_code == 200 and narrower.json()["scopes"] == ["orders:read"]


def test_a_stale_session_must_step_up_for_what_gives_power(settings, owner_client, member, scopes):
    app_id = create(owner_client, scopes=["orders:read", "orders:write"]).json()["id"]
    settings.PORTAL_STEP_UP_SECONDS = 0  # every proof of identity is now stale
    for response in (
        create(owner_client, name="Later"),
        owner_client.post(url(app_id, "rotate-secret"), {}, "application/json"),
        owner_client.patch(url(app_id), {"scopes": ["orders:read", "billing:read"]}, "application/json"),
        owner_client.patch(url(app_id), {"owner": member.email}, "application/json"),
        owner_client.post(url(app_id, "public-keys"), {"public_key": ec_public_pem()}, "application/json"),
    ):
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "step_up_required"
    assert M2MApplication.objects.count() == 1 and ClientSecret.objects.count() == 1
    # Reading, renaming, narrowing and revoking need no fresh sign-in.
    assert owner_client.get(url(app_id)).status_code == 200
    response = owner_client.patch(
        url(app_id), {"name": "Renamed", "scopes": ["orders:read"]}, "application/json"
    )
    assert response.status_code == 200, response.content
    assert owner_client.post(url(app_id, "revoke")).status_code == 200


# --- lists --------------------------------------------------------------------------------


def test_list_filters_and_pagination(owner_client, owner, member, member_client, scopes, settings):
    for i in range(3):
        create(owner_client, name=f"alpha {i}")
    create(member_client, name="beta", token_endpoint_auth_method="private_key_jwt")
    revoked = create(owner_client, name="gamma").json()
    owner_client.post(url(revoked["id"], "revoke"))
    count = lambda query: owner_client.get(url() + query).json()["count"]  # noqa: E731
    assert count("") == 5
    assert count("?search=alpha") == 3
    assert count(f"?search={revoked['client_id']}") == 1
    assert count("?search=dev@") == 1
    assert count(f"?owner={member.email}") == 1 and count("?owner=nobody@acme.test") == 0
    assert count("?status=revoked") == 1 and count("?status=active") == 4
    assert count("?token_endpoint_auth_method=private_key_jwt") == 1
    assert count("?auth_method=client_secret_basic") == 4
    first = owner_client.get(url()).json()
    assert first["next"] is None
    assert [a["name"] for a in first["results"][:2]] == ["gamma", "beta"]  # newest first


def test_pages_of_fifty(owner_client, owner, organization, make_app):
    for i in range(51):
        make_app(name=f"app {i:02}")
    first = owner_client.get(url()).json()
    assert first["count"] == 51 and len(first["results"]) == 50 and first["next"].endswith("?page=2")
    second = owner_client.get(url() + "?page=2").json()
    assert [a["name"] for a in second["results"]] == ["app 00"]
    assert owner_client.get(url() + "?page=3").status_code == 404


@pytest.mark.parametrize("count", [2, 25])
def test_list_query_count_is_constant(count, owner_client, member, scopes, django_assert_max_num_queries):
    for i in range(count):
        application, _ = m2m_app_create(
            organization=member.memberships.get().organization,
            name=f"app {i}",
            owner=member,
            actor=member,
            scopes=["orders:read", "orders:write"],
        )
        client_secret_rotate(application=application, actor=member)
    # session + user + membership + count + page + scopes + secrets + public keys
    with django_assert_max_num_queries(8):
        response = owner_client.get(url())
    assert response.json()["count"] == count
    assert all(len(a["secrets"]) == 2 and len(a["scopes"]) == 2 for a in response.json()["results"])


def test_list_query_count_with_a_key(owner, key_client, make_app, django_assert_max_num_queries):
    client, _ = key_client(owner)
    for i in range(20):
        make_app(name=f"app {i}")
    client.get(url())
    # organisation (with the owner's role) + count + page + scopes + secrets + public keys
    with django_assert_max_num_queries(6):
        assert client.get(url()).json()["count"] == 20
