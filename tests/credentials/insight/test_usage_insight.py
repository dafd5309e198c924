"""Usage insight per credential: recent IPs and denials, scopes used, the page's periods, the narrowing."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from credentials import usage
from credentials.api_keys import keys
from credentials.api_keys.models import ApiKey
from credentials.governance.edits import credential_scopes_set
from credentials.insight import recorder
from credentials.insight.models import UsageClientIp, UsageDenial, UsageScope
from credentials.insight.services import credential_scopes_narrow_to_used
from portal.models import AuditEvent
from tests.credentials.test_policy_shared import redis_cache  # noqa: F401 - the shared Redis fixture
from tests.factories import ScopeFactory
from tests.security.test_leak_sweep import api_key_fragments, table_dump
from tests.tokens.conftest import AppCredentials, request_token
from tokens.clients.services import m2m_app_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_usage_counters")]

INSIDE, OUTSIDE = "203.0.113.7", "198.51.100.9"


@pytest.fixture
def usage_scope(scopes):
    return ScopeFactory(name="usage:read")


def whoami(key: str, ip: str = INSIDE):
    return Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)


def read_usage(key: str, credential: str, ip: str = INSIDE):
    return Client().get(
        f"/api/v1/orgs/acme/usage/?credential={credential}",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        REMOTE_ADDR=ip,
    )


def wrong_secret(api_key) -> str:
    return keys.generate(api_key.environment, key_id=api_key.key_id)[1]


def ips_of(credential_id: str) -> dict[str, int]:
    return dict(UsageClientIp.objects.filter(credential_id=credential_id).values_list("ip", "count"))


def test_ips_denials_and_scopes_are_recorded_without_a_write_and_rolled_up_once(make_key, usage_scope):
    api_key, key = make_key(scopes=("usage:read", "orders:read"), allowed_ips=[INSIDE])
    assert whoami(key).status_code == 200
    assert read_usage(key, api_key.key_id).status_code == 200
    assert whoami(key, OUTSIDE).status_code == 403
    assert whoami(wrong_secret(api_key)).status_code == 401
    assert not UsageClientIp.objects.exists() and not UsageDenial.objects.exists()  # nothing per request
    usage.rollup()
    usage.rollup()  # each cache entry is claimed once: never counted twice
    assert ips_of(api_key.key_id) == {INSIDE: 3, OUTSIDE: 1}
    denials = list(UsageDenial.objects.filter(credential_id=api_key.key_id).order_by("at"))
    assert [(d.outcome, d.ip, d.endpoint) for d in denials] == [
        ("ip_denied", OUTSIDE, "/api/v1/whoami"),
        ("invalid_secret", INSIDE, "/api/v1/whoami"),
    ]
    assert dict(UsageScope.objects.values_list("scope", "count")) == {"usage:read": 1}
    # Later traffic adds to the rows.
    whoami(key)
    usage.rollup()
    assert ips_of(api_key.key_id) == {INSIDE: 4, OUTSIDE: 1}


def test_a_missing_scope_counts_as_insufficient_scope_and_uses_no_scope(make_key, usage_scope):
    api_key, key = make_key(scopes=("orders:read",))
    assert read_usage(key, api_key.key_id).status_code == 403
    usage.rollup()
    assert UsageDenial.objects.get().outcome == "insufficient_scope"
    assert not UsageScope.objects.exists()


def test_ips_and_denials_are_kept_to_the_last_20_per_credential(make_key):
    api_key, key = make_key()
    bad = wrong_secret(api_key)
    for i in range(15):
        whoami(key, f"192.0.2.{i}")
        whoami(bad, f"192.0.2.{i}")
    usage.rollup()
    for i in range(15, 25):
        whoami(key, f"192.0.2.{i}")
        whoami(bad, f"192.0.2.{i}")
    usage.rollup()
    assert UsageClientIp.objects.count() == 20
    assert set(ips_of(api_key.key_id)) == {f"192.0.2.{i}" for i in range(5, 25)}
    assert UsageDenial.objects.count() == 20
    assert not UsageDenial.objects.filter(ip="192.0.2.4").exists()


def test_on_redis_entries_of_two_servers_are_merged_once(redis_cache, make_key):  # noqa: F811
    api_key, key = make_key()
    whoami(key)
    usage.flush()  # one server's flush
    whoami(key, OUTSIDE)
    whoami(key, OUTSIDE)
    usage.flush()  # another's, the same minute: a second entry
    usage.rollup()
    usage.rollup()
    assert ips_of(api_key.key_id) == {INSIDE: 1, OUTSIDE: 2}


def test_the_cache_being_down_loses_the_notes_and_nothing_else(make_key, monkeypatch):
    api_key, key = make_key()

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(recorder.cache, "incr", down)
    assert whoami(key).status_code == 200
    usage.flush()  # fails open


@pytest.mark.parametrize(
    ("value", "heading"),
    [
        ("24h", "last 24 hours"),
        ("7d", "last 7 days"),
        ("90d", "last 90 days"),
        ("bogus", "last 24 hours"),
        ("", "last 24 hours"),
        ("7d&usage=90d", "last 90 days"),
    ],
)
def test_the_period_switch_never_fails(owner_client, make_key, value, heading):
    api_key, key = make_key()
    whoami(key)
    usage.rollup()
    response = owner_client.get(f"/orgs/acme/api-keys/{api_key.key_id}/?usage={value}")
    assert response.status_code == 200
    assert f"Usage, {heading}" in response.content.decode()


def test_the_page_shows_recent_ips_denials_and_unused_scopes(owner_client, make_key, usage_scope):
    api_key, key = make_key(scopes=("usage:read", "orders:read"))
    read_usage(key, api_key.key_id)
    whoami(wrong_secret(api_key), OUTSIDE)
    usage.rollup()
    page = owner_client.get(f"/orgs/acme/api-keys/{api_key.key_id}/").content.decode()
    assert INSIDE in page and OUTSIDE in page
    assert "invalid_secret" in page and "/api/v1/whoami" in page
    assert "Scopes never used in 30 days" in page
    unused = page.split('id="usage-scopes"')[1].split("</p>")[0]
    assert "orders:read" in unused and "usage:read" not in unused
    assert "Narrow to what is used" in page


def _page_queries(client, url, django_assert_max_num_queries, limit):
    with django_assert_max_num_queries(limit) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_page_queries_do_not_grow_with_ips_denials_or_periods(
    owner_client, make_key, django_assert_max_num_queries
):
    api_key, key = make_key()
    whoami(key)
    usage.rollup()
    url = f"/orgs/acme/api-keys/{api_key.key_id}/"
    few = _page_queries(owner_client, url, django_assert_max_num_queries, 40)
    bad = wrong_secret(api_key)
    for i in range(25):
        whoami(key, f"192.0.2.{i}")
        whoami(bad, f"192.0.2.{i}")
    usage.rollup()
    for period in ("24h", "7d", "90d"):
        assert _page_queries(owner_client, f"{url}?usage={period}", django_assert_max_num_queries, few) <= few


def test_narrowing_an_m2m_application_to_what_is_used(owner_client, organization, owner, scopes):
    app, secret = m2m_app_create(
        organization=organization,
        name="svc",
        owner=owner,
        actor=owner,
        scopes=["orders:read", "orders:write"],
    )
    creds = AppCredentials(app, app.client_id, secret)
    assert request_token(Client(REMOTE_ADDR=INSIDE), creds, scope="orders:read").status_code == 200
    usage.rollup()
    page = owner_client.get(f"/orgs/acme/apps/{app.pk}/").content.decode()
    assert INSIDE in page
    assert "orders:write" in page.split('id="usage-scopes"')[1].split("</p>")[0]
    response = owner_client.post(f"/orgs/acme/apps/{app.pk}/scopes/narrow/", follow=True)
    assert "narrowed to what is used: orders:read" in response.content.decode()
    app.refresh_from_db()
    assert sorted(app.allowed_scopes.values_list("name", flat=True)) == ["orders:read"]
    event = AuditEvent.objects.filter(action__endswith="scopes_changed").get()
    assert event.extra["via"] == "narrow_to_used" and event.extra["to"] == ["orders:read"]


def test_narrowing_never_puts_back_a_scope_removed_meanwhile(make_key, owner, admin_user):
    """The page was read before another manager removed a used scope: narrowing works from the row
    as it is under its lock, so the scope stays removed (narrowing never widens)."""
    api_key, _key = make_key(scopes=["orders:read", "orders:write", "billing:read"])
    for scope in ("orders:read", "orders:write"):
        UsageScope.objects.create(
            organization_id=api_key.organization_id,
            kind="api_key",
            credential_id=api_key.key_id,
            scope=scope,
            count=1,
            last_used=timezone.now(),
        )
    read_by_the_page = ApiKey.objects.get(pk=api_key.pk)
    credential_scopes_set(
        credential=ApiKey.objects.get(pk=api_key.pk), scopes=["orders:read", "billing:read"], actor=admin_user
    )
    assert credential_scopes_narrow_to_used(credential=read_by_the_page, actor=owner) == ["orders:read"]
    api_key.refresh_from_db()
    assert api_key.scopes == ["orders:read"]


def test_narrowing_that_would_remove_every_scope_is_refused(owner_client, make_key):
    api_key, key = make_key(scopes=("orders:read", "orders:write"))
    whoami(key)  # whoami needs no scope: nothing is used
    usage.rollup()
    response = owner_client.post(f"/orgs/acme/api-keys/{api_key.key_id}/scopes/narrow/", follow=True)
    assert "narrowing would remove every scope" in response.content.decode()
    api_key.refresh_from_db()
    assert sorted(api_key.scopes) == ["orders:read", "orders:write"]
    assert not AuditEvent.objects.filter(action__endswith="scopes_changed").exists()


def test_narrowing_is_a_post_for_members_who_may_change_scopes(
    member_client, outsider_client, make_key, owner
):
    api_key, _ = make_key(owner=owner)
    url = f"/orgs/acme/api-keys/{api_key.key_id}/scopes/narrow/"
    assert outsider_client.post(url).status_code == 404
    assert member_client.post(url).status_code == 403
    assert member_client.get(url).status_code in (403, 405)


def test_keys_verify_notes_the_address_the_service_reports(make_key, api_key_client):
    verifier_row, verifier = make_key(scopes=("api_keys:verify",), name="gateway")
    api_key, key = make_key()
    service = api_key_client(verifier)
    assert service.post("/api/v1/keys/verify", {"key": key, "client_ip": OUTSIDE}, REMOTE_ADDR=INSIDE).json()[
        "valid"
    ]
    assert service.post("/api/v1/keys/verify", {"key": key}, REMOTE_ADDR=INSIDE).json()["valid"]
    usage.rollup()
    assert ips_of(api_key.key_id) == {OUTSIDE: 1}  # never the verifying service's own address
    assert ips_of(verifier_row.key_id) == {INSIDE: 2}


def test_a_key_pasted_into_an_api_path_is_masked_in_usage_denials(owner_client, make_key):
    """A script that puts a key where its id belongs (`…/api-keys/<key>/move-to-m2m-app/`), from an
    address its own key's allowlist refuses, gets a 403 `ip_denied`. The access log masked that path;
    usage insight kept it raw (Redis, `UsageDenial`, "Recent denials" on the caller's page)."""
    caller, caller_plain = make_key(name="reader", scopes=("orders:read",), allowed_ips=["203.0.113.7"])
    _other, other_plain = make_key(name="pasted", scopes=("orders:read",))
    response = Client().post(
        f"/api/v1/orgs/acme/api-keys/{other_plain}/move-to-m2m-app/",
        HTTP_AUTHORIZATION=f"Bearer {caller_plain}",
        REMOTE_ADDR="198.51.100.9",
    )
    assert response.status_code == 403, response.content
    usage.rollup()
    denial = UsageDenial.objects.get(credential_id=caller.key_id)
    assert denial.endpoint.startswith("/api/v1/orgs/acme/api-keys/") and "[redacted]" in denial.endpoint
    secret_part = api_key_fragments(other_plain)[0]
    assert secret_part not in owner_client.get(f"/orgs/acme/api-keys/{caller.key_id}/").content.decode()
    assert secret_part not in table_dump()
