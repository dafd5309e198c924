"""Runtime policy on API keys: IP allowlist and rate limit over REST, the CLI and every verify path."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from credentials import policy
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_rotate
from credentials.api_keys.verification import api_key_verify
from credentials.governance.org_policy import policy_update
from portal.infra import ratelimit
from portal.models import AuditEvent
from tests.portal.test_account_security import make_stale, password_step

pytestmark = pytest.mark.django_db

INSIDE, OUTSIDE = "203.0.113.7", "198.51.100.9"


def url(key_id=None):
    return f"/api/v1/orgs/acme/api-keys/{key_id + '/' if key_id else ''}"


def whoami(key: str, ip: str = INSIDE, **extra):
    return Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip, **extra)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allowed_ips", ["10.0.0.1/8"]),  # host bits set
        ("allowed_ips", ["not-an-ip"]),
        ("allowed_ips", ["10.0.0.0/33"]),
        ("allowed_ips", [f"10.0.{i // 256}.{i % 256}/32" for i in range(101)]),
        ("allowed_ips", "10.0.0.0/8"),  # not a list
        ("allowed_ips", [7]),
        ("rate_limit", {"requests": 0, "per_seconds": 60}),
        ("rate_limit", {"requests": 10, "per_seconds": 0}),
        ("rate_limit", {"requests": 10, "per_seconds": 86401}),
        ("rate_limit", {"requests": 10**9, "per_seconds": 60}),
        ("rate_limit", {"requests": "ten", "per_seconds": 60}),
        ("rate_limit", {"requests": 10}),
        ("rate_limit", {"requests": 10, "per_seconds": 60, "burst": 5}),
        ("rate_limit", [10, 60]),
        ("rate_limit", {"requests": True, "per_seconds": 60}),
    ],
)
def test_bad_policy_is_a_field_error_on_create_and_patch(owner_client, make_key, field, value):
    response = owner_client.post(
        url(), {"name": "x", "scopes": ["orders:read"], field: value}, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json()
    api_key, _ = make_key()
    response = owner_client.patch(url(api_key.key_id), {field: value}, content_type="application/json")
    assert response.status_code == 400 and field in response.json()
    assert ApiKey.objects.count() == 1


def test_policy_is_created_shown_and_normalised(owner_client, scopes):
    response = owner_client.post(
        url(),
        {
            "name": "edge",
            "scopes": ["orders:read"],
            "allowed_ips": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.1"],
            "rate_limit": {"requests": 100, "per_seconds": 60},
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["allowed_ips"] == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.1/32"]
    assert body["rate_limit"] == {"requests": 100, "per_seconds": 60}
    shown = owner_client.get(url(body["id"])).json()
    assert shown["allowed_ips"] == body["allowed_ips"] and shown["rate_limit"] == body["rate_limit"]
    plain = owner_client.post(url(), {"name": "plain"}, content_type="application/json").json()
    assert plain["allowed_ips"] == [] and plain["rate_limit"] is None


# --- the allowlist --------------------------------------------------------------------------


def test_whoami_from_a_refused_address_is_403_ip_denied(make_key):
    _, key = make_key(allowed_ips=["203.0.113.0/24", "2001:db8::/32"])
    assert whoami(key, INSIDE).status_code == 200
    assert whoami(key, "2001:db8::1").status_code == 200
    response = whoami(key, OUTSIDE)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "This credential may not be used from this address.",
        "code": "ip_denied",
    }


def test_the_allowlist_reads_the_client_ip_through_trusted_proxies_only(make_key, settings):
    _, key = make_key(allowed_ips=["203.0.113.0/24"])
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.1"]
    assert whoami(key, "10.0.0.1", HTTP_X_FORWARDED_FOR=INSIDE).status_code == 200
    assert whoami(key, "10.0.0.1", HTTP_X_FORWARDED_FOR=OUTSIDE).status_code == 403
    # An untrusted peer cannot claim an allowed address.
    assert whoami(key, OUTSIDE, HTTP_X_FORWARDED_FOR=INSIDE).status_code == 403


def test_the_management_api_applies_the_calling_keys_allowlist(make_key):
    _, key = make_key(name="automation", scopes=["api_keys:manage", "orders:read"], allowed_ips=[INSIDE])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get(url(), REMOTE_ADDR=INSIDE).status_code == 200
    refused = client.get(url(), REMOTE_ADDR=OUTSIDE)
    assert refused.status_code == 403 and refused.json()["code"] == "ip_denied"


def test_keys_verify_applies_the_callers_allowlist_and_the_reported_client_ip(make_key):
    _, verifier = make_key(name="gateway", scopes=["api_keys:verify"], allowed_ips=[INSIDE])
    _, customer = make_key(name="customer", allowed_ips=["192.0.2.0/24"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {verifier}")

    def verify(ip=INSIDE, **body):
        return client.post(
            "/api/v1/keys/verify", {"key": customer, **body}, "application/json", REMOTE_ADDR=ip
        )

    refused = verify(ip=OUTSIDE)
    assert refused.status_code == 403 and refused.json()["code"] == "ip_denied"
    assert verify().json()["valid"] is True  # no client IP reported: the customer's list is not checked
    assert verify(client_ip="192.0.2.44").json()["valid"] is True
    assert verify(client_ip=OUTSIDE).json() == {"valid": False, "code": "ip_denied"}
    bad = verify(client_ip="nope")
    assert bad.status_code == 400 and "client_ip" in bad.json()


def test_the_allowlist_holds_without_a_cache(make_key, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    _, key = make_key(allowed_ips=[INSIDE])
    assert whoami(key, INSIDE).status_code == 200
    assert whoami(key, OUTSIDE).status_code == 403


# --- the rate limit -------------------------------------------------------------------------

# It counts in fixed windows: the tests that send several requests hold its clock (`rate_clock`),
# so their requests share one window even when a minute ends between them.


def _fields(response) -> tuple[str, dict[str, int]]:
    match = re.fullmatch(r'"default";r=(\d+);t=(\d+)', response["RateLimit"])
    assert match, response["RateLimit"]
    return response["RateLimit-Policy"], {"r": int(match[1]), "t": int(match[2])}


@pytest.mark.usefixtures("rate_clock")
def test_over_the_limit_is_429_with_retry_after_and_ratelimit_headers(make_key):
    _, key = make_key(rate_limit={"requests": 2, "per_seconds": 60})
    first, second, third = (whoami(key) for _ in range(3))
    assert first.status_code == second.status_code == 200
    assert _fields(first) == ('"default";q=2;w=60', {"r": 1, "t": _fields(first)[1]["t"]})
    assert _fields(second)[1]["r"] == 0
    assert third.status_code == 429
    assert third.json()["code"] == "rate_limited" and "detail" in third.json()
    policy_field, remaining = _fields(third)
    assert policy_field == '"default";q=2;w=60' and remaining["r"] == 0
    assert 1 <= int(third["Retry-After"]) <= 60 and remaining["t"] == int(third["Retry-After"])


def test_unlimited_keys_carry_no_ratelimit_headers(make_key):
    _, key = make_key()
    response = whoami(key)
    assert response.status_code == 200 and "RateLimit" not in response and "RateLimit-Policy" not in response


@pytest.mark.usefixtures("rate_clock")
def test_a_refused_address_does_not_spend_the_budget(make_key):
    _, key = make_key(allowed_ips=[INSIDE], rate_limit={"requests": 1, "per_seconds": 60})
    for _ in range(3):
        assert whoami(key, OUTSIDE).status_code == 403
    assert whoami(key, INSIDE).status_code == 200
    assert whoami(key, INSIDE).status_code == 429


@pytest.mark.usefixtures("rate_clock")
def test_the_limit_is_shared_by_every_client_of_the_key(make_key):
    _, key = make_key(rate_limit={"requests": 3, "per_seconds": 60})
    statuses = [whoami(key, ip).status_code for ip in (INSIDE, OUTSIDE, INSIDE, OUTSIDE)]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.usefixtures("rate_clock")
def test_keys_verify_counts_the_verified_keys_limit_in_the_body(make_key):
    _, verifier = make_key(name="gateway", scopes=["api_keys:verify"])
    _, customer = make_key(name="customer", rate_limit={"requests": 1, "per_seconds": 60})
    client = Client(HTTP_AUTHORIZATION=f"Bearer {verifier}")
    assert client.post("/api/v1/keys/verify", {"key": customer}, "application/json").json()["valid"] is True
    second = client.post("/api/v1/keys/verify", {"key": customer}, "application/json")
    assert second.status_code == 200
    body = second.json()
    assert body["valid"] is False and body["code"] == "rate_limited" and body["retry_after"] >= 1
    # The headers describe the caller (unlimited here), not the key it asked about.
    assert "RateLimit" not in second


class _BrokenCache:
    def add(self, *args, **kwargs):
        raise ConnectionError("cache down")

    incr = get = add


@pytest.mark.parametrize(("fail_open", "status"), [(True, 200), (False, 429)])
def test_a_cache_outage_fails_open_or_closed_per_setting(make_key, settings, monkeypatch, fail_open, status):
    settings.PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN = fail_open
    _, key = make_key(rate_limit={"requests": 5, "per_seconds": 60})
    monkeypatch.setattr(ratelimit, "cache", _BrokenCache())
    assert whoami(key).status_code == status


# --- changing the policy --------------------------------------------------------------------


def test_a_patch_takes_effect_at_once_and_is_audited_once(owner_client, make_key):
    api_key, key = make_key()
    assert whoami(key, OUTSIDE).status_code == 200  # the snapshot is now cached
    response = owner_client.patch(
        url(api_key.key_id),
        {"allowed_ips": [INSIDE], "rate_limit": {"requests": 5, "per_seconds": 10}},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["allowed_ips"] == [f"{INSIDE}/32"]
    assert whoami(key, OUTSIDE).status_code == 403
    assert _fields(whoami(key, INSIDE))[0] == '"default";q=5;w=10'
    events = AuditEvent.objects.filter(action="credentials.api_key.policy_changed")
    assert events.count() == 1
    assert events.get().extra["allowed_ips"] == {"from": [], "to": [f"{INSIDE}/32"]}
    # The same policy again changes nothing and writes nothing.
    owner_client.patch(url(api_key.key_id), {"allowed_ips": [INSIDE]}, content_type="application/json")
    assert events.count() == 1
    owner_client.patch(
        url(api_key.key_id), {"allowed_ips": [], "rate_limit": None}, content_type="application/json"
    )
    assert whoami(key, OUTSIDE).status_code == 200 and events.count() == 2


def test_changing_the_policy_needs_a_recent_sign_in(owner, make_key):
    api_key, _ = make_key()
    client = Client()
    password_step(client, owner.email)
    make_stale(client)
    limit = {"requests": 5, "per_seconds": 60}
    response = client.patch(url(api_key.key_id), {"rate_limit": limit}, content_type="application/json")
    assert response.status_code == 403 and response.json()["code"] == "step_up_required"
    # A rename needs no step-up, nor does sending back the policy as it was read.
    assert (
        client.patch(url(api_key.key_id), {"name": "n"}, content_type="application/json").status_code == 200
    )
    read = client.get(url(api_key.key_id)).json()
    unchanged = {"name": "m", "allowed_ips": read["allowed_ips"], "rate_limit": read["rate_limit"]}
    assert client.patch(url(api_key.key_id), unchanged, content_type="application/json").status_code == 200
    api_key.refresh_from_db()
    assert api_key.name == "m" and api_key.rate_limit is None


def test_a_member_cannot_change_someone_elses_keys_policy(member_client, make_key):
    api_key, _ = make_key(allowed_ips=[INSIDE])
    response = member_client.patch(url(api_key.key_id), {"allowed_ips": []}, content_type="application/json")
    assert response.status_code == 403 and response.json()["code"] == "not_manager"
    api_key.refresh_from_db()
    assert api_key.allowed_ips == [f"{INSIDE}/32"]


def test_the_policy_change_is_a_webhook_event():
    from credentials.webhooks.events import AUDIT_EVENTS

    assert AUDIT_EVENTS["credentials.api_key.policy_changed"] == "policy_changed"
    assert AUDIT_EVENTS["tokens.m2m_app.policy_changed"] == "policy_changed"


def test_rotation_keeps_the_policy(make_key, owner):
    api_key, _ = make_key(allowed_ips=[INSIDE], rate_limit={"requests": 9, "per_seconds": 9})
    successor, plaintext = api_key_rotate(api_key=api_key, actor=owner)
    assert successor.allowed_ips == [f"{INSIDE}/32"] and successor.rate_limit == {
        "requests": 9,
        "per_seconds": 9,
    }
    assert api_key_verify(plaintext).key["allowed_ips"] == [f"{INSIDE}/32"]


# --- the CLI --------------------------------------------------------------------------------


def test_create_api_key_takes_allowed_ips_and_rate_limit(owner, scopes):
    out = StringIO()
    call_command(
        "create_api_key",
        "--org=acme",
        "--name=cli",
        f"--owner={owner.email}",
        "--allowed-ips=203.0.113.0/24,2001:db8::/32",
        "--rate-limit=100/60",
        "--json",
        stdout=out,
    )
    body = json.loads(out.getvalue())
    assert body["allowed_ips"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert body["rate_limit"] == {"requests": 100, "per_seconds": 60}
    assert whoami(body["key"], OUTSIDE).status_code == 403


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--allowed-ips=10.0.0.1/8", "--allowed-ips"),
        ("--rate-limit=0/60", "--rate-limit"),
        ("--rate-limit=x", "N/S"),
    ],
)
def test_create_api_key_refuses_bad_policy_flags(owner, scopes, flag, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", "--org=acme", "--name=cli", f"--owner={owner.email}", flag)
    assert not ApiKey.objects.exists()


# --- the dashboard --------------------------------------------------------------------------


def test_dashboard_create_form_sets_the_policy_and_refuses_bad_input(owner_client, owner, scopes):
    from django.urls import reverse

    from tests.credentials.api_keys.test_dashboard import _form_token

    create_url = reverse("org-api-key-create", args=["acme"])
    page = owner_client.get(create_url)
    assert 'name="allowed_ips"' in page.content.decode() and 'name="rate_limit"' in page.content.decode()
    base = {"name": "edge", "owner": owner.pk, "scopes": ["orders:read"], "environment": "live"}
    bad = owner_client.post(
        create_url,
        {**base, "submission": _form_token(page), "allowed_ips": "10.0.0.1/8", "rate_limit": "0/60"},
    )
    assert bad.status_code == 400 and "host bits are set" in bad.content.decode()
    assert not ApiKey.objects.exists()
    good = owner_client.post(
        create_url,
        {
            **base,
            "submission": _form_token(owner_client.get(create_url)),
            "allowed_ips": "203.0.113.0/24\n2001:db8::/32",
            "rate_limit": "100/60",
        },
    )
    assert good.status_code == 200
    api_key = ApiKey.objects.get()
    assert api_key.allowed_ips == ["203.0.113.0/24", "2001:db8::/32"]
    assert api_key.rate_limit == {"requests": 100, "per_seconds": 60}


def test_dashboard_policy_form_on_the_detail_page(owner_client, make_key):
    from django.urls import reverse

    api_key, key = make_key()
    detail = owner_client.get(reverse("org-api-key-detail", args=["acme", api_key.key_id])).content.decode()
    assert "Runtime policy" in detail and "Any address" in detail
    policy_url = reverse("org-api-key-policy", args=["acme", api_key.key_id])
    response = owner_client.post(policy_url, {"policy-allowed_ips": INSIDE, "policy-rate_limit": "5/10"})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.allowed_ips == [f"{INSIDE}/32"] and api_key.rate_limit == {
        "requests": 5,
        "per_seconds": 10,
    }
    assert whoami(key, OUTSIDE).status_code == 403
    owner_client.post(policy_url, {"policy-allowed_ips": "nonsense", "policy-rate_limit": ""})
    api_key.refresh_from_db()
    assert api_key.allowed_ips == [f"{INSIDE}/32"]  # refused, unchanged
    assert AuditEvent.objects.filter(action="credentials.api_key.policy_changed").count() == 1


def test_the_dashboard_form_refuses_what_the_organisations_rules_refuse(
    owner, owner_client, organization, make_key
):
    """An allowlist emptied on a live key where the organisation requires one, a limit above the
    ceiling: the page says why (as the REST API's 400 does), nothing changes, never a 500."""
    api_key, _key = make_key(environment="live", allowed_ips=["203.0.113.0/24"])
    policy_update(
        organization=organization,
        actor=owner,
        require_allowed_ips_for_live=True,
        max_rate_limit={"requests": 10, "per_seconds": 60},
    )
    policy_url = reverse("org-api-key-policy", args=["acme", api_key.key_id])
    for form in (
        {"policy-allowed_ips": ""},
        {"policy-allowed_ips": "203.0.113.0/24", "policy-rate_limit": "1000/1"},
    ):
        response = owner_client.post(policy_url, {"policy-rate_limit": "", **form}, follow=True)
        assert response.status_code == 200
        assert any(m.level_tag == "error" for m in response.context["messages"])
    api_key.refresh_from_db()
    assert (api_key.allowed_ips, api_key.rate_limit) == (["203.0.113.0/24"], None)


def test_a_policy_set_on_a_key_rotated_meanwhile_is_refused_not_lost_on_the_successor(
    owner, owner_client, make_key
):
    """PATCH {"allowed_ips": …} on a key rotated a moment before (another tab, a colleague): the
    retiring key's policy is not its successor's, which the integration moves to. It answers 409
    `rotated`, as a scope increase does; the dashboard form says so too; nothing changes."""
    key, _ = make_key(name="contended")
    successor, _ = api_key_rotate(api_key=key, actor=owner)
    for body in ({"allowed_ips": ["10.0.0.0/8"]}, {"rate_limit": {"requests": 5, "per_seconds": 10}}):
        patched = owner_client.patch(url(key.key_id), body, "application/json")
        assert (patched.status_code, patched.json()["code"]) == (409, "rotated"), patched.content
    response = owner_client.post(
        reverse("org-api-key-policy", args=["acme", key.key_id]),
        {"policy-allowed_ips": "10.0.0.0/8", "policy-rate_limit": ""},
        follow=True,
    )
    assert "its successor is the one in use" in " ".join(str(m) for m in response.context["messages"])
    for row in (key, successor):
        row.refresh_from_db()
        assert (row.allowed_ips, row.rate_limit) == ([], None)
    assert not AuditEvent.objects.filter(action="credentials.api_key.policy_changed").exists()
    # The successor's policy is the one to change.
    patched = owner_client.patch(url(successor.key_id), {"allowed_ips": ["10.0.0.0/8"]}, "application/json")
    assert patched.status_code == 200 and patched.json()["allowed_ips"] == ["10.0.0.0/8"]


def test_dashboard_policy_change_needs_a_recent_sign_in(owner, make_key):
    from django.urls import reverse

    api_key, _ = make_key()
    client = Client()
    password_step(client, owner.email)
    make_stale(client)
    response = client.post(
        reverse("org-api-key-policy", args=["acme", api_key.key_id]), {"policy-allowed_ips": INSIDE}
    )
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.allowed_ips == []


# --- IPv4-mapped IPv6 addresses (a dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d) -------


def test_an_allowlist_entry_in_mapped_form_is_stored_as_the_ipv4_network_it_names(make_key):
    assert policy.clean_allowed_ips(["::ffff:10.0.0.0/104", "::ffff:10.1.2.3"]) == [
        "10.0.0.0/8",
        "10.1.2.3/32",
    ]
    assert policy.clean_allowed_ips(["2001:db8::/32"]) == ["2001:db8::/32"]
    _api_key, key = make_key(allowed_ips=policy.clean_allowed_ips(["::ffff:10.0.0.0/104"]))
    assert whoami(key, "::ffff:10.0.0.1").status_code == 200
    assert whoami(key, "10.0.0.1").status_code == 200
    assert whoami(key, OUTSIDE).status_code == 403


def test_a_trusted_proxy_seen_in_mapped_form_still_forwards_the_client_address(make_key, settings):
    """A proxy listed as 10.0.0.1 but seen as ::ffff:10.0.0.1: its X-Forwarded-For still names the
    client, or every client would pass as the proxy, inside a key's internal-network allowlist."""
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.1"]
    _api_key, key = make_key(allowed_ips=["10.0.0.0/8"])
    for proxy in ("10.0.0.1", "::ffff:10.0.0.1"):
        assert whoami(key, proxy, HTTP_X_FORWARDED_FOR=OUTSIDE).status_code == 403
        assert whoami(key, proxy, HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 200
    settings.PORTAL_TRUSTED_PROXIES = ["::ffff:10.0.0.1"]  # listed in mapped form, seen as IPv4
    assert whoami(key, "10.0.0.1", HTTP_X_FORWARDED_FOR=OUTSIDE).status_code == 403
