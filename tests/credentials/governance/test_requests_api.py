"""The credential requests REST API: who lists, approves, denies and cancels; every refusal has a code."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.test import Client

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_request
from credentials.governance.approvals import credential_request_create
from credentials.governance.models import CredentialRequest, CredentialStatus, RequestState, RequestType
from portal.models import AuditEvent, Membership, Role
from portal.services.organizations import membership_change_role
from tests.credentials.governance.conftest import Kit
from tests.factories import ScopeFactory, make_api_key
from tokens.clients.services import m2m_app_create, m2m_app_request
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db

BASE = "/api/v1/orgs/acme/requests/"


@pytest.fixture
def decide_scope(scopes):
    return ScopeFactory(name="requests:decide")


def _session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _machine(secret: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def _new_key_request(organization, member, name="nightly export"):
    return api_key_request(
        organization=organization,
        name=name,
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="Nightly export",
    )[1]


def _new_app_request(organization, member, name="billing"):
    return m2m_app_request(
        organization=organization, name=name, owner=member, requester=member, justification="Billing sync"
    )[1]


def _key(organization, owner, scopes, name="robot"):
    return make_api_key(organization, owner, name=name, scopes=scopes)


def _post(client, request_id, action, body=None):
    return client.post(f"{BASE}{request_id}/{action}/", body or {}, content_type="application/json")


# --- reading --------------------------------------------------------------------------------


def test_list_filters_and_pages_with_a_fixed_number_of_queries(
    organization, owner, member, scopes, django_assert_max_num_queries
):
    for number in range(3):
        _new_key_request(organization, member, f"key {number}")
    app_request = _new_app_request(organization, member)
    decided = _new_key_request(organization, member, "decided")
    browser = _session(owner)
    assert _post(browser, decided.pk, "deny", {"comment": "no"}).status_code == 200

    body = browser.get(BASE).json()
    assert body["count"] == 5 and body["page"] == 1 and body["pages"] == 1
    first = body["results"][0]
    assert first["id"] == decided.pk and first["state"] == "denied"  # newest first
    assert first["decided_by"] == owner.email and first["comment"] == "no"
    assert first["requester"] == member.email and first["type"] == "create"
    assert first["credential"]["kind"] == "api_key"
    assert first["credential"]["ref"] == ApiKey.objects.get(pk=decided.object_id).key_id

    pending = browser.get(BASE, {"state": "pending"}).json()
    assert pending["count"] == 4 and {r["state"] for r in pending["results"]} == {"pending"}
    apps = browser.get(BASE, {"kind": "m2m_app"}).json()
    assert [r["id"] for r in apps["results"]] == [app_request.pk]
    assert (
        apps["results"][0]["credential"]["ref"]
        == M2MApplication.objects.get(pk=app_request.object_id).client_id
    )
    assert browser.get(BASE, {"type": "scope_increase"}).json()["count"] == 0

    paged = browser.get(BASE, {"page_size": 2, "page": 2}).json()
    assert paged["count"] == 5 and paged["pages"] == 3 and len(paged["results"]) == 2
    assert browser.get(BASE, {"page_size": 2, "page": 9}).status_code == 404

    # The number of queries does not grow with the rows (one per credential kind for the refs).
    with django_assert_max_num_queries(8):
        assert len(browser.get(BASE).json()["results"]) == 5
    for number in range(20):
        _new_key_request(organization, member, f"more {number}")
        _new_app_request(organization, member, f"more app {number}")
    with django_assert_max_num_queries(8):
        assert len(browser.get(BASE, {"page_size": 200}).json()["results"]) == 45


def test_bad_filters_and_pages_answer_400(owner_client, organization, member, scopes):
    _new_key_request(organization, member)
    for params in (
        {"state": "maybe"},
        {"kind": "password"},
        {"type": "x"},
        {"page": "two"},
        {"page_size": "x"},
    ):
        response = owner_client.get(BASE, params)
        assert response.status_code == 400, params
        assert set(response.json()) <= {"state", "kind", "type", "page"}


def test_a_member_sees_only_their_own_requests(
    organization, owner, admin_user, member, member_client, scopes
):
    mine = _new_key_request(organization, member)
    theirs = _new_key_request(organization, admin_user, "admin's")
    assert [r["id"] for r in member_client.get(BASE).json()["results"]] == [mine.pk]
    assert member_client.get(f"{BASE}{mine.pk}/").json()["justification"] == "Nightly export"
    assert member_client.get(f"{BASE}{theirs.pk}/").status_code == 404
    assert {r["id"] for r in _session(owner).get(BASE).json()["results"]} == {mine.pk, theirs.pk}


def test_credentials_read_with_inventory_read_or_requests_decide(
    organization, owner, member, scopes, decide_scope
):
    request = _new_key_request(organization, member)
    _row, reader = _key(organization, member, ["inventory:read"], "reader")
    _row, decider = _key(organization, owner, ["requests:decide"], "decider")
    _row, plain = _key(organization, owner, ["orders:read"], "plain")
    assert [r["id"] for r in _machine(reader).get(BASE).json()["results"]] == [request.pk]
    assert _machine(decider).get(f"{BASE}{request.pk}/").status_code == 200
    refused = _machine(plain).get(BASE)
    assert refused.status_code == 403 and "inventory:read" in refused.json()["detail"]
    # A reader cannot decide.
    assert _post(_machine(reader), request.pk, "approve").status_code == 403
    assert CredentialRequest.objects.get(pk=request.pk).state == RequestState.PENDING


def test_another_organisations_request_is_a_404(
    organization, other_organization, owner, outsider, member, scopes, decide_scope
):
    request = _new_key_request(organization, member)
    outsiders = _session(outsider)
    for path in (f"{BASE}{request.pk}/", f"/api/v1/orgs/globex/requests/{request.pk}/"):
        assert outsiders.get(path).status_code == 404
    for action in ("approve", "deny", "cancel"):
        response = outsiders.post(
            f"/api/v1/orgs/globex/requests/{request.pk}/{action}/", {}, "application/json"
        )
        assert response.status_code == 404
        assert outsiders.post(f"{BASE}{request.pk}/{action}/", {}, "application/json").status_code == 404
    _row, foreign = api_key_create(
        organization=other_organization,
        name="globex",
        owner=outsider,
        scopes=["requests:decide"],
        actor=outsider,
    )
    assert _machine(foreign).get(f"{BASE}{request.pk}/").status_code == 404
    assert _post(_machine(foreign), request.pk, "approve").status_code == 404
    assert _machine(foreign).get(f"/api/v1/orgs/globex/requests/{request.pk}/").status_code == 404
    assert CredentialRequest.objects.get(pk=request.pk).state == RequestState.PENDING


# --- deciding -------------------------------------------------------------------------------


@pytest.mark.parametrize("decider", ["owner", "admin_user"])
def test_owners_and_admins_approve_by_session(request, decider, organization, member, scopes):
    user = request.getfixturevalue(decider)
    item = _new_key_request(organization, member)
    response = _post(_session(user), item.pk, "approve", {"comment": "ok for Q3"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "approved" and body["decided_by"] == user.email and body["comment"] == "ok for Q3"
    event = AuditEvent.objects.get(action="credentials.request.approved")
    assert event.actor_id == user.pk
    assert ApiKey.objects.get(pk=item.object_id).status == CredentialStatus.PENDING  # no secret yet


def test_deny_by_session_marks_a_new_credential_denied(owner_client, organization, member, scopes):
    item = _new_app_request(organization, member)
    response = _post(owner_client, item.pk, "deny", {"comment": "use the shared one"})
    assert response.status_code == 200 and response.json()["state"] == "denied"
    assert M2MApplication.objects.get(pk=item.object_id).status == CredentialStatus.DENIED


def test_a_key_with_requests_decide_decides_as_its_manager_owner(
    organization, owner, admin_user, member, scopes, decide_scope
):
    approve, deny = _new_key_request(organization, member, "a"), _new_key_request(organization, member, "b")
    _row, secret = _key(organization, admin_user, ["requests:decide"])
    response = _post(_machine(secret), approve.pk, "approve")
    assert response.status_code == 200 and response.json()["decided_by"] == admin_user.email
    response = _post(_machine(secret), deny.pk, "deny", {"comment": "no"})
    assert response.status_code == 200 and response.json()["state"] == "denied"
    assert AuditEvent.objects.get(action="credentials.request.denied").actor_id == admin_user.pk

    # The key loses the power when its owner stops being a manager.
    third = _new_key_request(organization, member, "c")
    Membership.objects.filter(user=admin_user, organization=organization).update(role=Role.MEMBER)
    assert _post(_machine(secret), third.pk, "approve").status_code == 403
    assert CredentialRequest.objects.get(pk=third.pk).state == RequestState.PENDING


def test_an_access_token_with_requests_decide_approves_a_scope_increase(
    client, organization, owner, admin_user, member, scopes, decide_scope
):
    credential, _secret = _key(organization, member, ["orders:read"], "widen me")
    item = credential_request_create(
        credential=credential,
        requester=member,
        request_type=RequestType.SCOPE_INCREASE,
        justification="Needs writes",
        requested_scopes=["orders:read", "orders:write"],
    )
    kit = Kit(key="m2m_app", organization=organization)
    application, app_secret = m2m_app_create(
        organization=organization, name="approver bot", owner=owner, scopes=["requests:decide"], actor=owner
    )
    token, _response = kit.bearer(client, application, app_secret)
    assert token
    response = _post(_machine(token), item.pk, "approve")
    assert response.status_code == 200, response.content
    assert response.json()["type"] == "scope_increase" and response.json()["decided_by"] == owner.email
    assert sorted(ApiKey.objects.get(pk=credential.pk).scopes) == ["orders:read", "orders:write"]


def test_the_requester_never_decides_their_own_request(organization, owner, admin_user, scopes, decide_scope):
    item = _new_key_request(organization, admin_user, "admin's own")
    response = _post(_session(admin_user), item.pk, "approve")
    assert response.status_code == 403
    assert response.json() == {"detail": "You cannot decide on your own request.", "code": "own_request"}
    # Nor through their own key.
    _row, secret = _key(organization, admin_user, ["requests:decide"])
    response = _post(_machine(secret), item.pk, "deny")
    assert response.status_code == 403 and response.json()["code"] == "own_request"
    assert CredentialRequest.objects.get(pk=item.pk).state == RequestState.PENDING


def test_members_and_their_keys_cannot_decide(
    organization, owner, member, member_client, scopes, decide_scope
):
    item = _new_key_request(organization, owner, "owner's")
    response = _post(member_client, item.pk, "approve")
    assert response.status_code == 403 and "owners and admins" in response.json()["detail"]
    # A member's key may not even hold the scope (portal.authz)...
    with pytest.raises(DjangoValidationError) as refused:
        _key(organization, member, ["requests:decide"], "member's")
    assert refused.value.error_dict["scopes"][0].code == "scope_beyond_owner"
    # ...and one made while they were an admin stops deciding the moment they are demoted.
    membership = Membership.objects.get(organization=organization, user=member)
    membership_change_role(membership=membership, role=Role.ADMIN, actor=owner)
    _row, secret = _key(organization, member, ["requests:decide"], "member's")
    membership_change_role(membership=membership, role=Role.MEMBER, actor=owner)
    assert _post(_machine(secret), item.pk, "approve").status_code == 403
    assert _post(_machine(secret), item.pk, "deny").status_code == 403
    assert CredentialRequest.objects.get(pk=item.pk).state == RequestState.PENDING
    assert not AuditEvent.objects.filter(action__startswith="credentials.request.a").exists()


def test_deciding_twice_is_a_409(owner_client, admin_client_org, organization, member, scopes):
    item = _new_key_request(organization, member)
    assert _post(owner_client, item.pk, "approve").status_code == 200
    for client, action in ((admin_client_org, "deny"), (owner_client, "approve")):
        response = _post(client, item.pk, action)
        assert response.status_code == 409
        assert response.json() == {"detail": "This request was already approved.", "code": "decided"}
    assert CredentialRequest.objects.get(pk=item.pk).state == RequestState.APPROVED


def test_sessions_need_a_recent_sign_in_and_csrf_to_decide(settings, organization, owner, member, scopes):
    item = _new_key_request(organization, member)
    settings.PORTAL_STEP_UP_SECONDS = 0
    response = _post(_session(owner), item.pk, "approve")
    assert response.status_code == 403 and response.json()["detail"].startswith("Confirm it is you")
    settings.PORTAL_STEP_UP_SECONDS = 300
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    response = _post(strict, item.pk, "approve")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert CredentialRequest.objects.get(pk=item.pk).state == RequestState.PENDING


def test_a_bad_body_is_a_400(owner_client, organization, member, scopes):
    item = _new_key_request(organization, member)
    for body in ({"comment": "x" * 501}, {"comment": ["a"]}, {"comment": {"a": 1}}):
        response = _post(owner_client, item.pk, "approve", body)
        assert response.status_code == 400 and "comment" in response.json(), body
    response = owner_client.post(f"{BASE}{item.pk}/deny/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert CredentialRequest.objects.get(pk=item.pk).state == RequestState.PENDING
    # An empty body is fine: the comment is optional.
    assert owner_client.post(f"{BASE}{item.pk}/deny/").status_code == 200


def test_anonymous_callers_are_refused(client, organization, member, scopes):
    item = _new_key_request(organization, member)
    assert client.get(BASE).status_code in (401, 403)
    assert _post(client, item.pk, "approve").status_code in (401, 403)
    assert CredentialRequest.objects.get(pk=item.pk).state == RequestState.PENDING


# --- cancelling -----------------------------------------------------------------------------


def test_the_requester_cancels_their_own_request_by_session(member_client, organization, member, scopes):
    item = _new_key_request(organization, member)
    response = _post(member_client, item.pk, "cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert ApiKey.objects.get(pk=item.object_id).status == CredentialStatus.DENIED
    assert AuditEvent.objects.filter(action="credentials.request.cancelled").count() == 1
    again = _post(member_client, item.pk, "cancel")
    assert again.status_code == 409 and again.json()["code"] == "decided"


def test_nobody_else_cancels_and_no_credential_does(
    owner_client, organization, owner, member, scopes, decide_scope
):
    item = _new_key_request(organization, member)
    response = _post(owner_client, item.pk, "cancel")
    assert response.status_code == 403 and response.json()["code"] == "not_requester"
    # Not even the requester's own key: withdrawing is a person's act, signed in.
    _row, secret = _key(organization, member, ["inventory:read"], "member's")
    response = _post(_machine(secret), item.pk, "cancel")
    assert response.status_code == 403 and "signed in" in response.json()["detail"]
    assert CredentialRequest.objects.get(pk=item.pk).state == RequestState.PENDING


# --- concurrency ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_approve_and_deny_at_once_over_the_api_leave_one_decision(
    require_postgres, organization, owner, admin_user, member, scopes
):
    item = _new_key_request(organization, member)
    calls = [(_session(owner), "approve"), (_session(admin_user), "deny")]
    barrier = threading.Barrier(len(calls))
    statuses: list[int] = []
    lock = threading.Lock()

    def run(client, action) -> None:
        try:
            barrier.wait(timeout=10)
            code = _post(client, item.pk, action).status_code
        finally:
            connection.close()
        with lock:
            statuses.append(code)

    threads = [threading.Thread(target=run, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200, 409]
    item.refresh_from_db()
    assert item.state in (RequestState.APPROVED, RequestState.DENIED)
    decisions = AuditEvent.objects.filter(
        action__in=["credentials.request.approved", "credentials.request.denied"]
    )
    assert decisions.count() == 1
