"""The organisation's runtime-policy rules (issue 18): an IP allowlist required on live credentials,
a default rate limit for new ones, and a ceiling on rate limits.

Checked in governance, so every interface (service, dashboard, REST, CLI) refuses the same way;
existing credentials are flagged against the policy, never broken.
"""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_request
from credentials.api_keys.verification import api_key_verify
from credentials.governance.edits import credential_policy_set
from credentials.governance.models import OrganizationPolicy
from credentials.governance.org_policy import policy_for, policy_update
from credentials.governance.selectors import InventoryFilters, inventory_queryset
from credentials.policy import exceeds
from portal.models import AuditEvent
from tests.factories import make_api_key, make_m2m_app
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db

NET = ["203.0.113.0/24"]
ACME_KEYS, ACME_APPS = "/api/v1/orgs/acme/api-keys/", "/api/v1/orgs/acme/m2m-apps/"


def require_allowlist(organization, owner):
    return policy_update(organization=organization, actor=owner, require_allowed_ips_for_live=True)


def field_error(excinfo, field):
    return excinfo.value.message_dict[field][0]


# --- the rate-limit comparison --------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "ceiling", "over"),
    [
        ({"requests": 600, "per_seconds": 60}, {"requests": 10, "per_seconds": 1}, False),
        ({"requests": 601, "per_seconds": 60}, {"requests": 10, "per_seconds": 1}, True),
        ({"requests": 5, "per_seconds": 1}, {"requests": 100, "per_seconds": 60}, True),
        (None, {"requests": 100, "per_seconds": 60}, True),
        (None, None, False),
        ({"requests": 10**6, "per_seconds": 1}, None, False),
    ],
)
def test_a_limit_is_compared_with_the_ceiling_as_a_rate(limit, ceiling, over):
    assert exceeds(limit, ceiling) is over


# --- 1. an allowlist on live credentials ----------------------------------------------------


def test_a_live_key_without_an_allowlist_is_refused_a_test_key_is_not(organization, owner, scopes):
    require_allowlist(organization, owner)
    with pytest.raises(ValidationError) as excinfo:
        make_api_key(organization, owner, environment="live")
    assert "requires an IP allowlist" in field_error(excinfo, "allowed_ips")
    assert not ApiKey.objects.exists()
    key, plaintext = make_api_key(organization, owner, environment="live", allowed_ips=NET)
    assert key.allowed_ips == NET
    test_key, _ = make_api_key(organization, owner, environment="test")
    assert test_key.allowed_ips == []


def test_an_application_counts_as_live(organization, owner, scopes):
    require_allowlist(organization, owner)
    with pytest.raises(ValidationError) as excinfo:
        make_m2m_app(organization, owner)
    assert "allowed_ips" in excinfo.value.message_dict
    assert not M2MApplication.objects.exists()
    application, _ = make_m2m_app(organization, owner, allowed_ips=NET)
    assert application.allowed_ips == NET


def test_removing_the_allowlist_is_refused_but_a_flagged_key_may_get_a_limit(organization, owner, scopes):
    unlisted, _ = make_api_key(organization, owner, environment="live", name="old")
    listed, _ = make_api_key(organization, owner, environment="live", name="new", allowed_ips=NET)
    require_allowlist(organization, owner)
    with pytest.raises(ValidationError) as excinfo:
        credential_policy_set(credential=listed, actor=owner, allowed_ips=[])
    assert "allowed_ips" in excinfo.value.message_dict
    credential_policy_set(credential=unlisted, actor=owner, rate_limit={"requests": 5, "per_seconds": 1})
    unlisted.refresh_from_db()
    assert unlisted.rate_limit == {"requests": 5, "per_seconds": 1} and unlisted.policy_flagged_at


def test_existing_credentials_are_flagged_never_broken_and_unflagged_when_fixed(organization, owner, scopes):
    key, plaintext = make_api_key(organization, owner, environment="live")
    test_key, _ = make_api_key(organization, owner, environment="test", name="test")
    application, _ = make_m2m_app(organization, owner)
    require_allowlist(organization, owner)
    key.refresh_from_db(), application.refresh_from_db(), test_key.refresh_from_db()
    assert key.policy_flagged_at and application.policy_flagged_at and test_key.policy_flagged_at is None
    assert api_key_verify(plaintext).valid  # still works
    assert AuditEvent.objects.filter(action="credentials.api_key.policy_flagged").count() == 1
    assert AuditEvent.objects.filter(action="tokens.m2m_app.policy_flagged").count() == 1
    against = inventory_queryset(organization, InventoryFilters(flag="against_policy"))
    assert {(row["row_kind"], row["id"]) for row in against} >= {
        ("api_key", key.pk),
        ("m2m_app", application.pk),
    }
    # Giving it an allowlist clears the flag; turning the rule off clears the others.
    credential_policy_set(credential=key, actor=owner, allowed_ips=NET)
    key.refresh_from_db()
    assert key.policy_flagged_at is None
    policy_update(organization=organization, actor=owner, require_allowed_ips_for_live=False)
    application.refresh_from_db()
    assert application.policy_flagged_at is None


def test_a_requested_live_key_needs_its_allowlist_with_the_request(organization, owner, scopes):
    require_allowlist(organization, owner)

    def request(**policy):
        return api_key_request(
            organization=organization,
            name="asked",
            owner=owner,
            scopes=["orders:read"],
            requester=owner,
            justification="nightly job",
            environment="live",
            **policy,
        )[0]

    with pytest.raises(ValidationError) as excinfo:
        request()
    assert "allowed_ips" in excinfo.value.message_dict
    assert not ApiKey.objects.exists()
    assert ApiKey.objects.get(pk=request(allowed_ips=NET).pk).allowed_ips == NET


# --- 2. the default rate limit --------------------------------------------------------------


def test_a_new_credential_without_a_limit_gets_the_default(organization, owner, scopes):
    policy_update(
        organization=organization, actor=owner, default_rate_limit={"requests": 100, "per_seconds": 60}
    )
    key, _ = make_api_key(organization, owner)
    application, _ = make_m2m_app(organization, owner)
    assert key.rate_limit == application.rate_limit == {"requests": 100, "per_seconds": 60}
    own, _ = make_api_key(organization, owner, name="own", rate_limit={"requests": 5, "per_seconds": 1})
    assert own.rate_limit == {"requests": 5, "per_seconds": 1}
    created = AuditEvent.objects.filter(action="credentials.api_key.created").order_by("pk").first()
    assert created.extra["rate_limit"] == {"requests": 100, "per_seconds": 60}


# --- 3. the ceiling -------------------------------------------------------------------------


def test_a_limit_above_the_ceiling_is_refused(organization, owner, scopes):
    policy_update(organization=organization, actor=owner, max_rate_limit={"requests": 10, "per_seconds": 1})
    with pytest.raises(ValidationError) as excinfo:
        make_api_key(organization, owner, rate_limit={"requests": 1000, "per_seconds": 60})
    assert "at most 10/1" in field_error(excinfo, "rate_limit")
    with pytest.raises(ValidationError):
        make_m2m_app(organization, owner, rate_limit={"requests": 11, "per_seconds": 1})
    within, _ = make_api_key(organization, owner, rate_limit={"requests": 600, "per_seconds": 60})
    assert within.rate_limit == {"requests": 600, "per_seconds": 60}
    # No limit and no default: the ceiling is the limit; removing the limit is refused.
    unlimited, _ = make_api_key(organization, owner, name="second")
    assert unlimited.rate_limit == {"requests": 10, "per_seconds": 1}
    with pytest.raises(ValidationError) as excinfo:
        credential_policy_set(credential=unlimited, actor=owner, rate_limit=None)
    assert "rate_limit" in excinfo.value.message_dict


def test_existing_credentials_over_a_new_ceiling_are_flagged(organization, owner, scopes):
    fast, plaintext = make_api_key(organization, owner, rate_limit={"requests": 100, "per_seconds": 1})
    slow, _ = make_api_key(organization, owner, name="slow", rate_limit={"requests": 1, "per_seconds": 1})
    unlimited, _ = make_m2m_app(organization, owner)
    policy_update(organization=organization, actor=owner, max_rate_limit={"requests": 10, "per_seconds": 1})
    fast.refresh_from_db(), slow.refresh_from_db(), unlimited.refresh_from_db()
    assert fast.policy_flagged_at and unlimited.policy_flagged_at and slow.policy_flagged_at is None
    assert api_key_verify(plaintext).valid
    assert fast.rate_limit == {"requests": 100, "per_seconds": 1}  # untouched


@pytest.mark.parametrize(
    "value",
    [
        {"requests": -1, "per_seconds": 60},
        {"requests": 0, "per_seconds": 60},
        {"requests": 10, "per_seconds": 0},
        {"requests": 10, "per_seconds": 10**9},
        {"requests": 10},
        "ten per minute",
    ],
)
def test_bad_policy_settings_are_field_errors(organization, owner, value):
    for name in ("default_rate_limit", "max_rate_limit"):
        with pytest.raises(ValidationError) as excinfo:
            policy_update(organization=organization, actor=owner, **{name: value})
        assert name in excinfo.value.message_dict
    assert policy_for(organization).default_rate_limit is None


def test_the_default_may_not_exceed_the_ceiling(organization, owner):
    with pytest.raises(ValidationError) as excinfo:
        policy_update(
            organization=organization,
            actor=owner,
            default_rate_limit={"requests": 100, "per_seconds": 1},
            max_rate_limit={"requests": 10, "per_seconds": 1},
        )
    assert "default_rate_limit" in excinfo.value.message_dict


def test_a_policy_change_is_audited_once(organization, owner):
    policy_update(
        organization=organization,
        actor=owner,
        require_allowed_ips_for_live=True,
        max_rate_limit={"requests": 10, "per_seconds": 1},
    )
    event = AuditEvent.objects.get(action="credentials.policy.updated")
    assert event.extra["require_allowed_ips_for_live"] == {"from": False, "to": True}
    assert event.extra["max_rate_limit"]["to"] == {"requests": 10, "per_seconds": 1}


# --- the interfaces -------------------------------------------------------------------------


def test_rest_create_and_patch_answer_field_errors(owner_client, organization, owner, scopes):
    require_allowlist(organization, owner)
    policy_update(organization=organization, actor=owner, max_rate_limit={"requests": 10, "per_seconds": 1})
    body = {"name": "edge", "scopes": ["orders:read"]}
    response = owner_client.post(ACME_KEYS, {**body, "environment": "live"}, content_type="application/json")
    assert response.status_code == 400 and "allowed_ips" in response.json(), response.content
    response = owner_client.post(
        ACME_KEYS,
        {**body, "environment": "test", "rate_limit": {"requests": 100, "per_seconds": 1}},
        content_type="application/json",
    )
    assert response.status_code == 400 and "rate_limit" in response.json()
    response = owner_client.post(
        ACME_APPS, {"name": "app", "scopes": ["orders:read"]}, content_type="application/json"
    )
    assert response.status_code == 400 and "allowed_ips" in response.json(), response.content
    response = owner_client.post(ACME_KEYS, {**body, "allowed_ips": NET}, content_type="application/json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["rate_limit"] == {"requests": 10, "per_seconds": 1}
    response = owner_client.patch(
        f"{ACME_KEYS}{created['id']}/", {"allowed_ips": []}, content_type="application/json"
    )
    assert response.status_code == 400 and "allowed_ips" in response.json()


def test_dashboard_policy_page_sets_the_rules(owner_client, organization):
    url = reverse("org-policy", args=["acme"])
    page = owner_client.get(url).content.decode()
    assert 'name="require_allowed_ips_for_live"' in page and 'name="max_rate_limit"' in page
    form = {
        "default_rotation_overlap_hours": 24,
        "api_key_review_interval_days": 90,
        "m2m_app_review_interval_days": 90,
        "orphan_grace_days": 14,
        "overdue_grace_days": 14,
        "leaked_credential_action": "revoke",
        "new_live_api_keys": "allowed",
        "new_test_api_keys": "allowed",
    }
    bad = owner_client.post(url, {**form, "max_rate_limit": "0/60", "default_rate_limit": "10/0"})
    assert bad.status_code == 400
    assert "requests must be a whole number" in bad.content.decode()
    assert "per_seconds must be a whole number" in bad.content.decode()
    bad = owner_client.post(url, {**form, "default_rate_limit": "100/1", "max_rate_limit": "10/1"})
    assert bad.status_code == 400 and "may not exceed the ceiling" in bad.content.decode()
    response = owner_client.post(
        url,
        {
            **form,
            "require_allowed_ips_for_live": "on",
            "default_rate_limit": "100/60",
            "max_rate_limit": "10/1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = OrganizationPolicy.objects.get(organization=organization)
    assert policy.require_allowed_ips_for_live
    assert policy.default_rate_limit == {"requests": 100, "per_seconds": 60}
    assert policy.max_rate_limit == {"requests": 10, "per_seconds": 1}
    assert 'value="10/1"' in owner_client.get(url).content.decode()


def test_dashboard_create_shows_the_field_error(owner_client, organization, owner, scopes):
    from tests.credentials.api_keys.test_dashboard import _form_token

    require_allowlist(organization, owner)
    create_url = reverse("org-api-key-create", args=["acme"])
    page = owner_client.get(create_url)
    base = {"name": "edge", "owner": owner.pk, "scopes": ["orders:read"], "environment": "live"}
    response = owner_client.post(create_url, {**base, "submission": _form_token(page)})
    assert response.status_code == 400 and "requires an IP allowlist" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_cli_create_refuses_and_accepts(organization, owner, scopes):
    require_allowlist(organization, owner)
    with pytest.raises(CommandError, match="--allowed-ips|allowlist"):
        call_command(
            "create_api_key", "--org=acme", "--name=cli", f"--owner={owner.email}", "--environment=live"
        )
    out = StringIO()
    call_command(
        "create_api_key",
        "--org=acme",
        "--name=cli",
        f"--owner={owner.email}",
        "--environment=live",
        "--allowed-ips=203.0.113.0/24",
        "--json",
        stdout=out,
    )
    assert json.loads(out.getvalue())["allowed_ips"] == NET


def test_the_rest_api_reads_and_changes_the_rules(owner_client, member_client, organization, owner, scopes):
    make_api_key(organization, owner, environment="live")
    url = "/api/v1/orgs/acme/policy/runtime/"
    assert owner_client.get(url).json() == {
        "require_allowed_ips_for_live": False,
        "default_rate_limit": None,
        "max_rate_limit": None,
        "flagged_credentials": 0,
    }
    refused = member_client.patch(
        url, {"require_allowed_ips_for_live": True}, content_type="application/json"
    )
    assert refused.status_code == 403
    for bad in (
        {"max_rate_limit": {"requests": -5, "per_seconds": 60}},
        {"default_rate_limit": {"requests": 5, "per_seconds": 10**7}},
        {
            "default_rate_limit": {"requests": 100, "per_seconds": 1},
            "max_rate_limit": {"requests": 1, "per_seconds": 1},
        },
    ):
        response = owner_client.patch(url, bad, content_type="application/json")
        assert response.status_code == 400 and set(response.json()) & set(bad), response.content
    changed = owner_client.patch(
        url,
        {"require_allowed_ips_for_live": True, "max_rate_limit": {"requests": 10, "per_seconds": 1}},
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["flagged_credentials"] == 1
    assert changed.json()["max_rate_limit"] == {"requests": 10, "per_seconds": 1}
    assert AuditEvent.objects.filter(action="credentials.policy.updated").count() == 1


def test_flagged_credentials_counts_what_the_inventory_filter_lists(
    organization, owner, owner_client, scopes
):
    """docs/governance.md: an expired credential is not `against_policy` (it no longer works). The
    runtime-rules API counted every active row with the flag, expired ones included."""
    in_sixty_days = timezone.now() + timedelta(days=60)
    make_api_key(organization, owner, name="working", expires_at=in_sixty_days)
    lapsed, _ = make_api_key(organization, owner, name="lapsed", expires_at=in_sixty_days)
    policy_update(organization=organization, actor=owner, require_allowed_ips_for_live=True)
    assert ApiKey.objects.filter(policy_flagged_at__isnull=False).count() == 2
    ApiKey.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    listed = owner_client.get("/api/v1/orgs/acme/inventory/?flag=against_policy").json()["count"]
    counted = owner_client.get("/api/v1/orgs/acme/policy/runtime/").json()["flagged_credentials"]
    assert (listed, counted) == (1, 1)
