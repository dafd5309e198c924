"""The staff admin holds no back door: no secret read out through lookups, no permission for any
staff account, no edit around the services (audit, orphans, four eyes), step-up where power changes."""

from __future__ import annotations

import base64
import json

import pytest
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.urls import reverse

from credentials.api_keys.services import api_key_revoke
from credentials.governance import org_policy
from portal.admin_mixins import SECRET_COLUMN
from portal.models import AuditEvent, Membership
from portal.services.organizations import invitation_create
from tests.factories import PASSWORD, ResourceServerFactory, UserFactory, enrol_totp
from tests.portal.test_account_security import make_stale
from tests.support.admin_forms import change_form_data, is_step_up_redirect, organization_form
from tokens.catalogue import token_terms

pytestmark = pytest.mark.django_db

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"  # Django's session keys


def _actions_since(last_id: int) -> list[str]:
    return list(AuditEvent.objects.filter(id__gt=last_id).order_by("id").values_list("action", flat=True))


def _last_event_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# --- secrets and secret-derived values reachable through changelist lookups -----------------------


def test_a_view_only_staff_user_cannot_recover_anyones_session_key_from_the_user_sessions_list(
    staff_with, owner
):
    """`?session_key__gte=…&session_key__startswith=…` is a local-field lookup Django allows, and a
    result count would be an oracle: a staff user who may only *view* user sessions would rebuild
    a signed-in customer's session key and take the session over."""
    victim = Client()
    assert victim.post("/accounts/login/", {"login": owner.email, "password": PASSWORD}).status_code == 302
    cookie = victim.cookies[settings.SESSION_COOKIE_NAME].value

    spy = staff_with("usersessions.view_usersession")
    url = reverse("admin:usersessions_usersession_changelist")

    def exists(**lookups) -> bool | None:
        response = spy.get(url, lookups)
        if response.status_code != 200 or "cl" not in (response.context or {}):
            return None  # the lookup is refused: nothing to learn
        return response.context["cl"].result_count > 0

    prefix = ""
    for _position in range(len(cookie)):
        low, high = 0, len(ALPHABET) - 1
        while low < high:  # the highest character c with a key >= prefix + c under this prefix
            middle = (low + high + 1) // 2
            answer = exists(session_key__startswith=prefix, session_key__gte=prefix + ALPHABET[middle])
            if answer is None:
                break
            low, high = (middle, high) if answer else (low, middle - 1)
        prefix += ALPHABET[low]

    assert prefix != cookie, "a view-only staff user rebuilt a customer's live session key from the admin"
    hijacked = Client()
    hijacked.cookies[settings.SESSION_COOKIE_NAME] = prefix
    assert "owner@acme.test" not in hijacked.get("/").content.decode()


def test_no_admin_filters_on_a_secret_derived_column(superuser):
    request = RequestFactory().get("/admin/")
    request.user = superuser
    checked = []
    for model, model_admin in admin.site._registry.items():
        for field in model._meta.concrete_fields:
            if SECRET_COLUMN.search(field.name):
                checked.append(f"{model._meta.label}.{field.name}")
                assert not model_admin.lookup_allowed(f"{field.name}__startswith", "a", request), checked[-1]
    assert {
        "credentials.ApiKey.digest",
        "tokens.ClientSecret.digest",
        "portal.Invitation.token_digest",
    } <= set(checked)
    assert {"usersessions.UserSession.session_key", "mfa.Authenticator.data"} <= set(checked)


def test_searching_user_sessions_in_the_admin_does_not_fail(super_client):
    """allauth's UserSessionAdmin searches `user__username`; the portal's User has no username."""
    super_client.raise_request_exception = False
    response = super_client.get(
        reverse("admin:usersessions_usersession_changelist"), {"q": "owner@acme.test"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("which", ["api_key", "client_secret", "invitation"])
def test_stored_secret_digests_cannot_be_probed_through_changelist_lookups(
    which, staff_with, organization, owner, make_key, make_app
):
    """`?digest__startswith=…` is a local-field lookup the admin allows: a count of 1 or 0 reads the
    keyed digest out one character at a time, which the admins say they never show (Django's own
    UserAdmin refuses such lookups on `password` for the same reason)."""
    if which == "api_key":
        key, _ = make_key()
        url, field, digest, perm = (
            reverse("admin:credentials_apikey_changelist"),
            "digest",
            key.digest,
            "credentials.view_apikey",
        )
    elif which == "client_secret":
        secret = make_app().application.secrets.get()
        url, field, digest, perm = (
            reverse("admin:tokens_clientsecret_changelist"),
            "digest",
            secret.digest,
            "tokens.view_clientsecret",
        )
    else:
        invitation, _token = invitation_create(
            organization=organization, email="new@acme.test", role="member", actor=owner
        )
        url, field, digest, perm = (
            reverse("admin:portal_invitation_changelist"),
            "token_digest",
            invitation.token_digest,
            "portal.view_invitation",
        )
    client = staff_with(perm)

    def count(prefix: str):
        response = client.get(url, {f"{field}__startswith": prefix})
        return response.context["cl"].result_count if response.status_code == 200 else None

    right = digest[:6]
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:6]
    assert count(right) == count(wrong), "the changelist tells a right digest prefix from a wrong one"


def test_the_authenticator_admin_never_shows_the_encrypted_totp_secret(super_client, owner):
    """The webhook admin hides even the ciphertexts ("never shown, not even encrypted"); allauth's
    Authenticator admin, registered as is, shows and lets staff edit the Fernet-encrypted TOTP
    secret (and recovery-code seed) of every account."""
    enrol_totp(owner)
    authenticator = Authenticator.objects.get(user=owner)
    page = super_client.get(
        reverse("admin:mfa_authenticator_change", args=[authenticator.pk])
    ).content.decode()
    assert authenticator.data["secret"] not in page
    assert 'name="data"' not in page


def test_removing_someones_second_factor_in_the_admin_is_audited(super_client, owner):
    """docs/account-security.md: `portal.account.mfa_removed` when one was removed. The admin's
    delete removes a customer's authenticator with no event at all."""
    enrol_totp(owner)
    authenticator = Authenticator.objects.get(user=owner)
    before = _last_event_id()
    super_client.post(reverse("admin:mfa_authenticator_delete", args=[authenticator.pk]), {"post": "yes"})
    removed = not Authenticator.objects.filter(pk=authenticator.pk).exists()
    assert not removed or "portal.account.mfa_removed" in _actions_since(before)


# --- permissions --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["credentialrequest", "pendingapproval", "notice", "leakreport"])
def test_record_lists_need_their_own_view_permission(model, staff_with, organization, member, scopes):
    """Without this model's own permission a staff account (here one that may only view scopes)
    does not read the requests with their justifications, the notices or the leak reports."""
    client = staff_with("credentials.view_scope")
    response = client.get(reverse(f"admin:credentials_{model}_changelist"))
    assert response.status_code == 403


# --- organisations and memberships ---------------------------------------------------------------


def test_swapping_the_person_of_a_membership_in_the_organisation_admin_is_a_removal_and_an_addition(
    super_client, organization, owner, member, make_key
):
    """The membership inline lets staff change `user` on an existing row: the member is gone with
    no `portal.membership.removed` event, their credentials are not orphaned (membership_delete is
    skipped), and the newcomer joins with no `portal.membership.created` event."""
    newcomer = UserFactory(email="newcomer@acme.test")
    key, _ = make_key(owner=member)
    url = reverse("admin:portal_organization_change", args=[organization.pk])
    data, prefixes = organization_form(super_client.get(url), organization)
    data[f"{prefixes[Membership.objects.get(user=member).pk]}-user"] = newcomer.pk
    before = _last_event_id()
    super_client.post(url, data)

    if Membership.objects.filter(user=member, organization=organization).exists():
        return  # refused: fine
    key.refresh_from_db()
    actions = _actions_since(before)
    assert "portal.membership.removed" in actions
    assert "portal.membership.created" in actions
    assert key.orphaned_at is not None


def test_deleting_an_organisation_does_not_open_its_own_api_to_every_organisation(
    super_client, organization, other_organization
):
    """A catalogue entry open to some organisations is a tenant's own API; with none it is a
    platform API open to all (docs/m2m.md). Deleting the tenant in the admin cascades the link
    rows and silently turns its API into one every organisation may get tokens for."""
    api = ResourceServerFactory(identifier="https://orders.acme.example", organizations=[organization])
    assert token_terms(audience=api.identifier, organization_id=other_organization.pk) is None
    super_client.post(reverse("admin:portal_organization_delete", args=[organization.pk]), {"post": "yes"})
    cache.clear()
    assert token_terms(audience=api.identifier, organization_id=other_organization.pk) is None


def test_deleting_a_user_in_the_admin_does_not_leave_their_api_keys_ownerless_and_unflagged(
    super_client, organization, owner, member, make_key
):
    """ApiKey.owner is SET_NULL (M2M applications PROTECT): deleting a member in the admin removes
    the membership by cascade (no `membership_delete`, no event) and leaves an active key with no
    owner and no orphan mark, so the orphan grace never suspends it."""
    key, _ = make_key(owner=member)
    before = _last_event_id()
    super_client.post(reverse("admin:portal_user_delete", args=[member.pk]), {"post": "yes"})
    key.refresh_from_db()
    if key.owner_id == member.pk:
        return  # refused: fine
    assert key.orphaned_at is not None or key.status != "active"
    assert _actions_since(before), "the member left the organisation with no audit event"


def test_changing_a_groups_permissions_asks_for_step_up_and_is_audited(super_client, organization):
    """Saving a user's groups or permissions steps up and writes `portal.user.staff_powers_changed`;
    Django's stock GroupAdmin hands the same powers to every member of a group with neither."""
    support = Group.objects.create(name="support")
    staff = UserFactory(email="helper@portal.test", is_staff=True)
    staff.groups.add(support)
    make_stale(super_client)
    change_user = Permission.objects.get(content_type__app_label="portal", codename="change_user")
    before = _last_event_id()
    response = super_client.post(
        reverse("admin:auth_group_change", args=[support.pk]),
        {"name": "support", "permissions": [change_user.pk]},
    )
    granted = support.permissions.filter(pk=change_user.pk).exists()
    assert is_step_up_redirect(response) and not granted
    assert not granted or _actions_since(before)


# --- the scope catalogue and resource servers ------------------------------------------------------


def test_deleting_a_scope_does_not_widen_a_resource_server_to_every_scope(
    super_client, organization, owner, scopes, make_app
):
    """A resource server with accepted scopes [orders:read] has "any scope" once staff delete
    orders:read in the admin (the link row cascades; empty means any). A token for that API then
    carries orders:write, which it never accepted. No audit event either."""
    api = ResourceServerFactory(identifier="https://orders.example.com", scopes=["orders:read"])
    app = make_app(scopes=["orders:read", "orders:write"], audiences=[api.identifier])
    before = _last_event_id()
    super_client.post(
        reverse("admin:credentials_scope_delete", args=[scopes["orders:read"].pk]), {"post": "yes"}
    )
    cache.clear()
    response = Client().post(
        "/oauth/token",
        {"grant_type": "client_credentials", "resource": api.identifier, "scope": "orders:write"},
        HTTP_AUTHORIZATION=_basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 400, json.loads(response.content)
    assert (
        _actions_since(before) or scopes["orders:read"].__class__.objects.filter(name="orders:read").exists()
    )


def test_renaming_a_scope_in_use_keeps_api_keys_and_applications_consistent(
    super_client, organization, owner, scopes, make_key, make_app
):
    """Applications hold scopes by reference (they follow a rename), API keys by name (they do
    not): renaming orders:read in the admin leaves the key with a scope the catalogue no longer
    has, while the application's tokens carry the new name. A scope in use should not be renamed
    (or the rename must reach the keys, with an audit event)."""
    key, _ = make_key(scopes=["orders:read"])
    make_app(scopes=["orders:read"])
    scope = scopes["orders:read"]
    super_client.post(
        reverse("admin:credentials_scope_change", args=[scope.pk]),
        {"name": "orders:view", "description": "Read"},
    )
    key.refresh_from_db()
    catalogue = set(scope.__class__.objects.values_list("name", flat=True))
    assert set(key.scopes) <= catalogue, f"the key holds {key.scopes}, the catalogue {sorted(catalogue)}"


# --- step-up on changes of who holds power ---------------------------------------------------------


def test_a_truthy_spelling_of_a_staff_flag_still_asks_for_step_up(
    super_client, organization, owner, make_app
):
    """`_staff_flags_changing` reads a checkbox as on only for "on"/"true"/"1", Django's
    CheckboxInput for any non-empty value but "false": posting is_resource_server=True from a
    stale session sets the cross-organisation mark with no fresh sign-in."""
    application = make_app().application
    url = reverse("admin:tokens_m2mapplication_change", args=[application.pk])
    data = change_form_data(super_client.get(url))
    make_stale(super_client)
    assert is_step_up_redirect(super_client.post(url, {**data, "is_resource_server": "on"}))  # the control
    response = super_client.post(url, {**data, "is_resource_server": "True"})
    application.refresh_from_db()
    assert is_step_up_redirect(response) and not application.is_resource_server


def test_changing_the_credential_policy_in_the_admin_asks_for_step_up(super_client, organization, owner):
    """BRIEF (authority rule): changes of policy need a recent step-up; the dashboard asks
    (`policy.change`), the OrganizationPolicy admin does not."""
    policy = org_policy.policy_for(organization)
    url = reverse("admin:credentials_organizationpolicy_change", args=[policy.pk])
    data = change_form_data(super_client.get(url))
    make_stale(super_client)
    response = super_client.post(url, {**data, "approve_new_api_keys": "", "orphan_grace_days": 365})
    policy.refresh_from_db()
    assert is_step_up_redirect(response)
    assert policy.orphan_grace_days == 14


@pytest.mark.parametrize("path", ["api_key_form", "m2m_app_form", "reassign_action"])
def test_giving_a_credential_another_owner_in_the_admin_asks_for_step_up(
    path, super_client, organization, owner, admin_user, make_key, make_app
):
    """BRIEF (authority rule) and docs/account-security.md: giving a credential another owner needs
    a recent step-up. The API key and M2M change forms and the *reassign owner* action do not ask."""
    if path == "api_key_form":
        credential, _ = make_key()
        make_stale(super_client)
        response = super_client.post(
            reverse("admin:credentials_apikey_change", args=[credential.pk]), {"owner": admin_user.pk}
        )
    elif path == "m2m_app_form":
        credential = make_app().application
        url = reverse("admin:tokens_m2mapplication_change", args=[credential.pk])
        data = change_form_data(super_client.get(url))
        make_stale(super_client)
        response = super_client.post(url, {**data, "owner": admin_user.pk})
    else:
        credential, _ = make_key()
        make_stale(super_client)
        response = super_client.post(
            reverse("admin:credentials_apikey_changelist"),
            {
                "action": "reassign_owner",
                "_selected_action": [credential.pk],
                "apply": "1",
                "owner": admin_user.pk,
            },
        )
    credential.refresh_from_db()
    assert is_step_up_redirect(response)
    assert credential.owner_id == owner.pk


# --- bypassing the services ----------------------------------------------------------------------


def test_a_client_secret_cannot_be_deleted_by_hand_in_the_admin(super_client, organization, owner, make_app):
    """ClientSecretAdmin is only ReadOnly (not Immutable like client public keys): staff delete a
    live secret, i.e. revoke it, with no `secret_revoked` event and no webhook."""
    application = make_app().application
    secret = application.secrets.get()
    before = _last_event_id()
    super_client.post(reverse("admin:tokens_clientsecret_delete", args=[secret.pk]), {"post": "yes"})
    deleted = not application.secrets.filter(pk=secret.pk).exists()
    assert not deleted or _actions_since(before), "a live client secret vanished with no audit event"


def test_an_invitation_cannot_be_deleted_by_hand_in_the_admin(super_client, organization, owner):
    """Revoking an invitation is audited (`portal.invitation.revoked`, a change of who may hold
    power); the invitation admin's delete removes a pending one with no event."""
    invitation, _token = invitation_create(
        organization=organization, email="x@acme.test", role="admin", actor=owner
    )
    before = _last_event_id()
    super_client.post(reverse("admin:portal_invitation_delete", args=[invitation.pk]), {"post": "yes"})
    deleted = not invitation.__class__.objects.filter(pk=invitation.pk).exists()
    assert not deleted or _actions_since(before)


def test_a_revoked_api_keys_owner_cannot_be_changed_in_its_change_form(
    super_client, organization, owner, admin_user, make_key
):
    """The reassign action refuses ("A revoked credential cannot change owner", ownership.
    credential_reassign_owner); the change form goes through api_key_update, which does not check."""
    key, _ = make_key()
    api_key_revoke(api_key=key, actor=owner, reason="done")
    super_client.post(reverse("admin:credentials_apikey_change", args=[key.pk]), {"owner": admin_user.pk})
    key.refresh_from_db()
    assert key.owner_id == owner.pk


# --- bad input ---------------------------------------------------------------------------------


def test_a_rate_limit_typed_as_text_in_the_policy_admin_is_not_a_server_error(super_client, organization):
    """The model validator accepts the N/S spelling as a JSON string ("100/60"), then
    OrganizationPolicy.clean compares it as a dict: TypeError, 500."""
    policy = org_policy.policy_for(organization)
    url = reverse("admin:credentials_organizationpolicy_change", args=[policy.pk])
    data = change_form_data(super_client.get(url))
    super_client.raise_request_exception = False
    response = super_client.post(
        url,
        {**data, "max_rate_limit": '{"requests": 10, "per_seconds": 60}', "default_rate_limit": '"100/60"'},
    )
    assert response.status_code in (200, 302)
