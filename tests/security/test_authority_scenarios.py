"""The scenarios of issue 14 as HTTP regression tests: each is refused with its code, and nothing changed.

Covered elsewhere, not repeated here:
- (5) MFA secrets survive the documented key rotation: tests/portal/test_encryption_key_rotation.py.
- (6) lifetimes are bounded and their arithmetic cannot overflow: tests/credentials/test_lifetime_bounds.py.
- (8) `is_resource_server` needs a step-up and writes an audit event:
  tests/tokens/protocol/test_token_exchange_admin.py.
- (9) a token exchanged for an `ipk_test_` key says so: tests/tokens/protocol/test_token_exchange.py.
- (10) audiences from a catalogue and the verifier's organisation pin: another engineer's change.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from credentials.governance.models import CredentialRequest, RequestState
from portal.models import AuditEvent, Invitation, Membership, Role
from portal.services.organizations import invitation_create, membership_change_role, membership_remove
from tests.factories import ScopeFactory, UserFactory, enrol_totp
from tests.portal.test_account_security import make_stale
from tests.security.authority import leaked, own_request, state, token_for
from tokens.clients import snapshot as client_snapshot
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.django_db

SCOPES = (
    "api_keys:manage",
    "api_keys:verify",
    "m2m_apps:manage",
    "inventory:read",
    "usage:read",
    "requests:decide",
    "webhooks:manage",
    "orders:read",
)
MANAGER_SCOPES = ["requests:decide", "webhooks:manage"]


@pytest.fixture(autouse=True)
def catalogue(db):
    return {name: ScopeFactory(name=name) for name in SCOPES}


def keys_api(slug: str = "acme") -> str:
    return reverse("api-org-api-key-list", args=[slug])


def machine(secret: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def refused(response, code: str, *, before, secrets=()) -> None:
    """Check a REST refusal: 403 with `code`, nothing changed, no secret in the body."""
    assert response.status_code == 403, (response.status_code, response.content)
    body = response.json()
    assert body["code"] == code and body["detail"], body
    assert state() == before, "a refusal changed something"
    assert leaked(response.content, set(secrets)) == []


def whoami_scopes(secret: str) -> list[str]:
    response = machine(secret).get("/api/v1/whoami")
    assert response.status_code == 200, response.content
    return response.json()["scopes"]


# --- (1) a plain member does not become a manager through a key -----------------------------------


def test_a_members_manage_key_cannot_rotate_the_owners_key_nor_mint_one_for_the_owner(
    organization, owner, member
):
    owners_key, owners_secret = api_key_create(
        organization=organization, name="deploy", owner=owner, scopes=["orders:read"], actor=owner
    )
    _key, members_secret = api_key_create(
        organization=organization, name="mine", owner=member, scopes=["api_keys:manage"], actor=member
    )
    before = state()

    rotate = machine(members_secret).post(f"{keys_api()}{owners_key.key_id}/rotate/", {}, "application/json")
    refused(rotate, "not_manager", before=before, secrets=[owners_secret])

    mint = machine(members_secret).post(
        keys_api(),
        {"name": "escalate", "owner": owner.email, "scopes": MANAGER_SCOPES},
        "application/json",
    )
    refused(mint, "not_manager", before=before)
    assert not ApiKey.objects.filter(name="escalate").exists()


def test_a_member_cannot_give_their_own_key_a_managers_scope(organization, member):
    key, secret = api_key_create(
        organization=organization, name="mine", owner=member, scopes=["orders:read"], actor=member
    )
    session = Client()
    session.force_login(member)
    before = state()

    wide = ["orders:read", "webhooks:manage"]
    for response, beyond in (
        (session.post(keys_api(), {"name": "wide", "scopes": ["requests:decide"]}, "application/json"),
         "requests:decide"),
        (session.patch(f"{keys_api()}{key.key_id}/", {"scopes": wide}, "application/json"),
         "webhooks:manage"),
    ):  # fmt: skip
        assert response.status_code == 400, response.content
        [message] = response.json()["scopes"]  # a field error, like any other bad input
        assert message.startswith("Only owners and admins may hold these scopes") and beyond in message
        assert state() == before

    # The service names it with a code (scope_beyond_owner), for every caller.
    with pytest.raises(ValidationError) as raised:
        api_key_create(organization=organization, name="wide", owner=member, scopes=wide, actor=member)
    assert raised.value.error_dict["scopes"][0].code == "scope_beyond_owner"

    # The dashboard form says so on the field, and creates nothing.
    form = session.post(
        reverse("org-api-key-create", args=["acme"]),
        {
            "name": "wide",
            "owner": member.pk,
            "scopes": ["requests:decide"],
            "environment": "live",
            "submission": "scenario-1",
        },
    )
    assert form.status_code in (200, 400)
    assert "requests:decide" in form.context["form"].errors.get("scopes", [""])[0]
    assert state() == before
    assert whoami_scopes(secret) == ["orders:read"]


# --- (2) a key does not widen itself ----------------------------------------------------------------


def test_a_manage_only_key_cannot_patch_its_own_scopes_wider(organization, owner):
    key, secret = api_key_create(
        organization=organization, name="automation", owner=owner, scopes=["api_keys:manage"], actor=owner
    )
    before = state()
    response = machine(secret).patch(
        f"{keys_api()}{key.key_id}/", {"scopes": ["api_keys:manage", *MANAGER_SCOPES]}, "application/json"
    )
    refused(response, "exceeds_credential", before=before)
    assert whoami_scopes(secret) == ["api_keys:manage"]

    # Narrowing itself is fine (and it cannot come back).
    narrowed = machine(secret).patch(f"{keys_api()}{key.key_id}/", {"name": "renamed"}, "application/json")
    assert narrowed.status_code == 200


# --- (3) four eyes through a credential --------------------------------------------------------------


def approve_url(request: CredentialRequest) -> str:
    return reverse("api-org-request-approve", args=["acme", request.pk])


def test_four_eyes_an_app_the_requester_created_for_an_admin_cannot_approve(organization, owner, admin_user):
    application, secret = m2m_app_create(
        organization=organization, name="approver", owner=admin_user, actor=owner, scopes=["requests:decide"]
    )
    request = own_request(organization, owner)
    token = token_for(application, secret)
    before = state()
    refused(machine(token).post(approve_url(request), {}, "application/json"), "four_eyes", before=before)
    request.refresh_from_db()
    assert request.state == RequestState.PENDING and request.decided_by is None


def test_four_eyes_a_key_the_requester_created_for_an_admin_cannot_approve(organization, owner, admin_user):
    _key, secret = api_key_create(
        organization=organization, name="approver", owner=admin_user, scopes=["requests:decide"], actor=owner
    )
    request = own_request(organization, owner)
    before = state()
    refused(machine(secret).post(approve_url(request), {}, "application/json"), "four_eyes", before=before)

    # The admin's own key (nobody else behind it) may decide: the refusal above is four eyes, not scope.
    _own, own_secret = api_key_create(
        organization=organization, name="mine", owner=admin_user, scopes=["requests:decide"], actor=admin_user
    )
    approved = machine(own_secret).post(approve_url(request), {}, "application/json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["decided_by"] == admin_user.email


# --- (4) and (11) changes of who holds power need a recent step-up ----------------------------------


@pytest.fixture
def stale_owner(owner):
    client = Client()
    client.force_login(owner)
    make_stale(client)
    return client


def _assert_step_up(response) -> None:
    assert response.status_code == 302, response.status_code
    assert response["Location"].startswith(reverse("account_reauthenticate") + "?next=")


@pytest.mark.parametrize("role", [Role.MEMBER, Role.ADMIN, Role.OWNER])
def test_invitations_of_every_role_need_a_step_up(stale_owner, role):
    before = state()
    _assert_step_up(
        stale_owner.post(reverse("org-invite", args=["acme"]), {"email": "new@acme.test", "role": role})
    )
    assert state() == before and not Invitation.objects.exists()


def test_member_removal_invitation_revoke_and_role_changes_need_a_step_up(
    stale_owner, organization, owner, member
):
    invitation, _token = invitation_create(
        organization=organization, email="new@acme.test", role=Role.MEMBER, actor=owner
    )
    membership = Membership.objects.get(user=member)
    before = state()
    for url, data in (
        (reverse("org-member-remove", args=["acme", membership.pk]), {}),
        (reverse("org-invitation-revoke", args=["acme", invitation.pk]), {}),
        (reverse("org-member-role", args=["acme", membership.pk]), {"role": Role.ADMIN}),
    ):
        _assert_step_up(stale_owner.post(url, data))
    assert state() == before


def test_scope_widening_and_owner_changes_need_a_step_up(stale_owner, organization, owner, member):
    key, _secret = api_key_create(
        organization=organization, name="deploy", owner=owner, scopes=["orders:read"], actor=owner
    )
    before = state()
    _assert_step_up(
        stale_owner.post(
            reverse("org-api-key-scopes", args=["acme", key.key_id]),
            {"scopes": ["orders:read", "usage:read"]},
        )
    )
    _assert_step_up(
        stale_owner.post(
            reverse("org-api-key-reassign", args=["acme", key.key_id]), {"owner-owner": member.pk}
        )
    )
    assert state() == before

    # Over REST, a stale session gets exactly {"detail", "code": "step_up_required"} (scenario 11).
    detail = f"{keys_api()}{key.key_id}/"
    for body in ({"scopes": ["orders:read", "usage:read"]}, {"owner": member.email}):
        response = stale_owner.patch(detail, body, "application/json")
        assert response.status_code == 403
        assert set(response.json()) == {"detail", "code"}
        assert response.json()["code"] == "step_up_required"
        assert state() == before

    # Narrowing is not a change of power: no step-up.
    narrowed = stale_owner.patch(detail, {"scopes": []}, "application/json")
    assert narrowed.status_code == 200, narrowed.content


# --- (7) a member's credential sees only its owner's requests ---------------------------------------


def test_a_members_inventory_key_lists_only_its_owners_requests(organization, owner, member):
    mine = own_request(organization, member)
    own_request(organization, owner)
    _key, members_secret = api_key_create(
        organization=organization, name="reader", owner=member, scopes=["inventory:read"], actor=member
    )
    _key, owners_secret = api_key_create(
        organization=organization, name="reader", owner=owner, scopes=["inventory:read"], actor=owner
    )
    url = reverse("api-org-request-list", args=["acme"])
    listed = machine(members_secret).get(url).json()
    assert [item["id"] for item in listed["results"]] == [mine.pk]
    assert listed["count"] == 1
    assert machine(owners_secret).get(url).json()["count"] == 2


# --- a credential shrinks with its owner -------------------------------------------------------------


def test_demoting_the_owner_of_a_key_and_of_an_app_shrinks_them_at_once(organization, owner, admin_user):
    wide = ["orders:read", "inventory:read", *MANAGER_SCOPES]
    _key, key_secret = api_key_create(
        organization=organization, name="ops", owner=admin_user, scopes=wide, actor=admin_user
    )
    application, app_secret = m2m_app_create(
        organization=organization, name="ops app", owner=admin_user, actor=admin_user, scopes=wide
    )
    token = token_for(application, app_secret)
    request = own_request(organization, owner)
    hooks = reverse("api-org-webhook-list", args=["acme"])
    assert machine(key_secret).get(hooks).status_code == 200
    assert sorted(whoami_scopes(token)) == sorted(wide)

    membership_change_role(membership=Membership.objects.get(user=admin_user), role=Role.MEMBER, actor=owner)

    for bearer in (key_secret, token):
        assert sorted(whoami_scopes(bearer)) == ["inventory:read", "orders:read"]
    before = state()
    refused(machine(key_secret).get(hooks), "insufficient_scope", before=before)
    refused(
        machine(token).post(approve_url(request), {}, "application/json"), "insufficient_scope", before=before
    )
    refused(
        machine(key_secret).post(approve_url(request), {}, "application/json"),
        "insufficient_scope",
        before=before,
    )
    # A fresh token is minted without the managers' scopes, too.
    assert sorted(whoami_scopes(token_for(application, app_secret))) == ["inventory:read", "orders:read"]


def test_removing_the_owner_strips_every_portal_scope_from_their_keys_and_tokens(
    organization, owner, admin_user
):
    wide = ["orders:read", "inventory:read", "api_keys:manage", *MANAGER_SCOPES]
    _key, key_secret = api_key_create(
        organization=organization, name="ops", owner=admin_user, scopes=wide, actor=admin_user
    )
    application, app_secret = m2m_app_create(
        organization=organization, name="ops app", owner=admin_user, actor=admin_user, scopes=wide
    )
    token = token_for(application, app_secret)
    assert machine(key_secret).get(keys_api()).status_code == 200

    membership_remove(membership=Membership.objects.get(user=admin_user), actor=owner)

    for bearer in (key_secret, token):
        scopes = whoami_scopes(bearer)
        assert scopes == ["orders:read"], scopes  # the customer's API scope only: it is orphaned, not dead
    before = state()
    for response in (
        machine(key_secret).get(keys_api()),
        machine(key_secret).get(reverse("api-org-inventory", args=["acme"])),
        machine(token).get(reverse("api-org-request-list", args=["acme"])),
    ):
        assert response.status_code == 403
        assert response.json()["code"] in ("insufficient_scope", "owner_not_member")
        assert state() == before


@pytest.mark.parametrize("shared_cache", [False, True], ids=["per-process cache", "redis"])
def test_deactivating_the_owners_account_strips_every_portal_scope_until_it_is_reactivated(
    request, shared_cache, organization, owner, admin_user, django_capture_on_commit_callbacks
):
    """A deactivated account lends its credentials no role, as if its owner had left (at once)."""
    if shared_cache:
        request.getfixturevalue("redis_cache")
    wide = ["orders:read", "inventory:read", "api_keys:manage", *MANAGER_SCOPES]
    _key, key_secret = api_key_create(
        organization=organization, name="ops", owner=admin_user, scopes=wide, actor=admin_user
    )
    application, app_secret = m2m_app_create(
        organization=organization, name="ops app", owner=admin_user, actor=admin_user, scopes=wide
    )
    cache.delete(client_snapshot.cache_key(application.client_id))  # the creation's tombstone
    token = token_for(application, app_secret)
    token_for(application, app_secret)  # from the client snapshot, where there is one
    assert sorted(whoami_scopes(key_secret)) == sorted(wide)  # the key's snapshot, cached
    assert machine(key_secret).get(keys_api()).status_code == 200

    admin_user.is_active = False
    with django_capture_on_commit_callbacks(execute=True):
        admin_user.save()  # what the admin's user form does

    for bearer in (key_secret, token, token_for(application, app_secret)):
        assert whoami_scopes(bearer) == ["orders:read"]  # the customer's API scope only
    before = state()
    response = machine(key_secret).get(keys_api())
    assert response.status_code == 403 and response.json()["code"] in (
        "insufficient_scope",
        "owner_not_member",
    )
    assert state() == before

    admin_user.is_active = True
    with django_capture_on_commit_callbacks(execute=True):
        admin_user.save()
    assert sorted(whoami_scopes(key_secret)) == sorted(wide)
    assert sorted(whoami_scopes(token_for(application, app_secret))) == sorted(wide)


@pytest.mark.parametrize("shared_cache", [False, True], ids=["per-process cache", "redis"])
def test_an_owners_new_address_is_what_services_see_at_once(
    request, shared_cache, organization, owner, admin_user, django_capture_on_commit_callbacks
):
    """`whoami` and `/api/v1/keys/verify` name the owner by address: a change shows on the next call."""
    if shared_cache:
        request.getfixturevalue("redis_cache")
    _key, key_secret = api_key_create(
        organization=organization, name="ops", owner=admin_user, scopes=["orders:read"], actor=admin_user
    )
    _verifier, verifier_secret = api_key_create(
        organization=organization, name="gateway", owner=owner, scopes=["api_keys:verify"], actor=owner
    )

    def seen() -> tuple[str, str]:
        whoami = machine(key_secret).get("/api/v1/whoami").json()
        verified = machine(verifier_secret).post(
            "/api/v1/keys/verify", {"key": key_secret}, content_type="application/json"
        )
        return whoami["owner"], verified.json()["owner"]

    assert seen() == (admin_user.email, admin_user.email)  # both snapshots cached now
    admin_user.email = "ops-lead@acme.test"
    with django_capture_on_commit_callbacks(execute=True):
        admin_user.save()
    assert seen() == ("ops-lead@acme.test", "ops-lead@acme.test")
    with django_capture_on_commit_callbacks(execute=True):
        admin_user.save(update_fields=["last_login"])  # a login: nothing the snapshots hold
    assert seen() == ("ops-lead@acme.test", "ops-lead@acme.test")


def test_staff_deactivating_an_account_in_the_admin_is_audited_in_every_organisation(
    organization, other_organization, owner, admin_user, django_capture_on_commit_callbacks
):
    Membership.objects.create(organization=other_organization, user=admin_user, role=Role.MEMBER)
    _key, key_secret = api_key_create(
        organization=organization, name="ops", owner=admin_user, scopes=["orders:read", "api_keys:manage"],
        actor=admin_user,
    )  # fmt: skip
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)  # staff use the portal only with a second factor
    browser = Client()
    browser.force_login(staff)
    url = reverse("admin:portal_user_change", args=[admin_user.pk])
    form = {
        "email": admin_user.email,
        "full_name": admin_user.full_name,
        "is_active": "",  # unticked
        "date_joined_0": admin_user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": admin_user.date_joined.strftime("%H:%M:%S"),
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(url, form)
    assert response.status_code == 302, response.content[:2000]
    admin_user.refresh_from_db()
    assert admin_user.is_active is False
    events = AuditEvent.objects.filter(action="portal.user.deactivated")
    assert sorted((e.organization.slug, e.actor, e.extra["role"]) for e in events) == [
        ("acme", staff, Role.ADMIN),
        ("globex", staff, Role.MEMBER),
    ]
    assert whoami_scopes(key_secret) == ["orders:read"]

    with django_capture_on_commit_callbacks(execute=True):
        assert browser.post(url, {**form, "is_active": "on"}).status_code == 302
    assert AuditEvent.objects.filter(action="portal.user.reactivated").count() == 2
    assert sorted(whoami_scopes(key_secret)) == ["api_keys:manage", "orders:read"]
    with django_capture_on_commit_callbacks(execute=True):
        assert browser.post(url, {**form, "is_active": "on", "full_name": "Renamed"}).status_code == 302
    assert AuditEvent.objects.filter(action__startswith="portal.user.").count() == 4  # no change, no row
