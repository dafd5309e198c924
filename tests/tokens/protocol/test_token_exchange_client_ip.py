"""Token exchange (RFC 8693) and the exchanged API key's runtime policy (issue 18).

The key's IP allowlist is checked against the `client_ip` a gateway reports only when staff
trust the gateway to report it (`may_report_client_ip`); otherwise against the address the
request comes from (the gateway's own, `PORTAL_TRUSTED_PROXIES` as everywhere). A refusal is
`invalid_request` (RFC 8693 §2.2.2), counted for the key. Every request goes through the
Django test client to /oauth/token; counts are read after `usage.rollup()`.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from credentials import usage
from credentials.api_keys import keys
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke, api_key_rotate
from credentials.governance.reviews import credential_suspend
from credentials.insight.models import UsageClientIp
from portal.models import AuditEvent
from tests.support.usage import outcome_counts
from tests.tokens.conftest import basic
from tests.tokens.protocol.test_token_exchange_admin import _admin_form
from tokens.models import M2MApplication
from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE, KEY_IP_DENIED

pytestmark = pytest.mark.django_db

GATEWAY_IP = "192.0.2.10"  # where the gateway's requests come from
CLIENT_IP = "203.0.113.7"  # the customer calling the gateway
ELSEWHERE = "198.51.100.9"


@pytest.fixture(autouse=True)
def _fresh_counters():
    usage._counts.clear()
    yield
    usage._counts.clear()


def exchange(gateway, key: str, *, remote: str = GATEWAY_IP, forwarded_for: str | None = None, **params):
    data = {
        "grant_type": GRANT_TYPE,
        "subject_token_type": API_KEY_TOKEN_TYPE,
        "subject_token": key,
        **params,
    }
    return Client().post(
        "/oauth/token",
        data,
        HTTP_AUTHORIZATION=basic(gateway.client_id, gateway.client_secret),
        REMOTE_ADDR=remote,
        **({"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for else {}),
    )


def error_of(response) -> dict:
    assert response.status_code == 400, response.content
    assert response["Cache-Control"] == "no-store"
    return json.loads(response.content)


def counts(credential_id: str) -> dict[str, int]:
    usage.rollup()
    return outcome_counts(credential_id)


IP_DENIED = {"error": "invalid_request", "error_description": KEY_IP_DENIED}


# --- a gateway not trusted to report addresses: the request's own address --------------------


def test_an_untrusted_gateway_is_checked_by_its_own_address(gateway, make_customer_key):
    api_key, plaintext = make_customer_key(allowed_ips=["192.0.2.0/24"])
    assert exchange(gateway, plaintext).status_code == 200
    assert error_of(exchange(gateway, plaintext, remote=ELSEWHERE)) == IP_DENIED
    assert counts(api_key.key_id) == {"valid": 1, "ip_denied": 1}
    assert counts(gateway.client_id) == {"valid": 1}  # the gateway's own use: one token issued


def test_an_untrusted_gateway_cannot_report_an_address(gateway, make_customer_key):
    api_key, plaintext = make_customer_key(allowed_ips=[f"{CLIENT_IP}/32"])
    body = error_of(exchange(gateway, plaintext, client_ip=CLIENT_IP))
    assert body["error"] == "invalid_request" and "client_ip" in body["error_description"]
    # Not a way around the allowlist either: the gateway's address is outside it.
    assert error_of(exchange(gateway, plaintext)) == IP_DENIED
    assert counts(api_key.key_id) == {"ip_denied": 1}


def test_a_key_without_an_allowlist_is_exchanged_from_anywhere(trusted_gateway, gateway, make_customer_key):
    _api_key, plaintext = make_customer_key()
    assert exchange(trusted_gateway, plaintext, remote=ELSEWHERE).status_code == 200
    assert exchange(trusted_gateway, plaintext, client_ip=ELSEWHERE).status_code == 200


@override_settings(PORTAL_TRUSTED_PROXIES=["10.0.0.1"])
def test_the_gateways_address_comes_through_the_trusted_proxies(gateway, make_customer_key):
    _api_key, plaintext = make_customer_key(allowed_ips=["192.0.2.0/24"])
    via_proxy = {"remote": "10.0.0.1", "forwarded_for": f"{CLIENT_IP}, {GATEWAY_IP}"}
    response = exchange(gateway, plaintext, **via_proxy)
    assert response.status_code == 200, response.content
    forged = {"remote": ELSEWHERE, "forwarded_for": GATEWAY_IP}  # not from a trusted proxy
    assert error_of(exchange(gateway, plaintext, **forged)) == IP_DENIED


# --- a trusted gateway: the address it reports --------------------------------------------------


def test_a_trusted_gateway_reports_the_client_address(trusted_gateway, make_customer_key):
    api_key, plaintext = make_customer_key(allowed_ips=["203.0.113.0/24", "2001:db8::/32"])
    # The gateway's own address is outside the key's list: the reported one counts.
    assert exchange(trusted_gateway, plaintext, client_ip=CLIENT_IP).status_code == 200
    assert exchange(trusted_gateway, plaintext, client_ip="2001:db8::5").status_code == 200
    assert error_of(exchange(trusted_gateway, plaintext, client_ip=ELSEWHERE)) == IP_DENIED
    # Reporting nothing: the request's own address, outside the list.
    assert error_of(exchange(trusted_gateway, plaintext)) == IP_DENIED
    assert counts(api_key.key_id) == {"valid": 2, "ip_denied": 2}
    # The key's recent addresses are its clients', not the gateway's.
    seen = set(UsageClientIp.objects.filter(credential_id=api_key.key_id).values_list("ip", flat=True))
    assert seen == {CLIENT_IP, "2001:db8::5", ELSEWHERE, GATEWAY_IP}
    api_key.refresh_from_db()
    assert api_key.last_used_ip == CLIENT_IP  # the first use; written at most once a minute


@pytest.mark.parametrize(
    "reported",
    ["not-an-ip", "203.0.113.0/24", f"{CLIENT_IP}, {ELSEWHERE}", "1" * 200, "203.0.113.7\x00", "::ffff:zz"],
)
def test_a_bad_reported_address_is_invalid_request(trusted_gateway, make_customer_key, reported):
    api_key, plaintext = make_customer_key(allowed_ips=["203.0.113.0/24"])
    body = error_of(exchange(trusted_gateway, plaintext, client_ip=reported))
    assert body == {
        "error": "invalid_request",
        "error_description": "The 'client_ip' parameter is not an IPv4 or IPv6 address.",
    }
    assert counts(api_key.key_id) == {}


def test_a_repeated_client_ip_is_refused(trusted_gateway, make_customer_key):
    _api_key, plaintext = make_customer_key(allowed_ips=["203.0.113.0/24"])
    body = error_of(exchange(trusted_gateway, plaintext, client_ip=[CLIENT_IP, ELSEWHERE]))
    assert body["error"] == "invalid_request" and "client_ip" in body["error_description"]


# --- the key's other outcomes at exchange ---------------------------------------------------------


@pytest.mark.usefixtures("rate_clock")
def test_the_keys_rate_limit_holds_at_exchange(trusted_gateway, make_customer_key):
    api_key, plaintext = make_customer_key(rate_limit={"requests": 2, "per_seconds": 60})
    assert exchange(trusted_gateway, plaintext, client_ip=CLIENT_IP).status_code == 200
    assert exchange(trusted_gateway, plaintext, client_ip=CLIENT_IP).status_code == 200
    body = error_of(exchange(trusted_gateway, plaintext, client_ip=CLIENT_IP))
    assert body["error"] == "invalid_request"
    assert body["error_description"].startswith("The subject_token's request limit is used up. Retry after ")
    assert counts(api_key.key_id) == {"valid": 2, "rate_limited": 1}


@pytest.mark.usefixtures("rate_clock")
def test_a_rotated_keys_successor_is_exchanged_on_the_same_budget(trusted_gateway, make_customer_key, owner):
    # A rotation is no fresh budget: the key's limit is counted by its lineage (credentials.policy).
    api_key, plaintext = make_customer_key(rate_limit={"requests": 2, "per_seconds": 60})
    assert exchange(trusted_gateway, plaintext, client_ip=CLIENT_IP).status_code == 200
    successor, new_plaintext = api_key_rotate(api_key=api_key, actor=owner)
    assert exchange(trusted_gateway, new_plaintext, client_ip=CLIENT_IP).status_code == 200
    for presented in (new_plaintext, plaintext):  # during the overlap, both keys: one budget
        body = error_of(exchange(trusted_gateway, presented, client_ip=CLIENT_IP))
        assert body["error_description"].startswith("The subject_token's request limit is used up.")
    assert counts(successor.key_id) == {"valid": 1, "rate_limited": 1}


def test_every_outcome_of_the_exchanged_key_is_counted(gateway, make_customer_key, owner):
    api_key, plaintext = make_customer_key()
    assert exchange(gateway, plaintext).status_code == 200
    wrong = plaintext[:-6] + ("A" if plaintext[-6] != "A" else "B") + plaintext[-5:]
    assert error_of(exchange(gateway, wrong))["error"] == "invalid_request"  # a bad checksum: no key
    assert error_of(exchange(gateway, plaintext, scope="orders:write"))["error"] == "invalid_scope"
    other_secret = keys.generate(api_key.environment, key_id=api_key.key_id)[1]
    assert error_of(exchange(gateway, other_secret))["error"] == "invalid_request"  # invalid_secret
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    cache.clear()  # the snapshot cache: a direct update drops nothing
    assert error_of(exchange(gateway, plaintext))["error"] == "invalid_request"  # expired
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=None)
    cache.clear()
    api_key.refresh_from_db()
    credential_suspend(credential=api_key, actor=owner, reason="manual")
    assert error_of(exchange(gateway, plaintext))["error"] == "invalid_request"  # suspended
    revoked, revoked_plaintext = make_customer_key()
    api_key_revoke(api_key=revoked, actor=owner, reason="done")
    assert error_of(exchange(gateway, revoked_plaintext))["error"] == "invalid_request"  # revoked
    assert counts(api_key.key_id) == {
        "valid": 1,
        "insufficient_scope": 1,
        "invalid_secret": 1,
        "expired": 1,
        "suspended": 1,
    }
    assert counts(revoked.key_id) == {"revoked": 1}


# --- who may trust a gateway: staff, in the admin, audited -----------------------------------------


def test_staff_trust_a_gateway_to_report_addresses_in_the_admin(
    staff_client,  # noqa: F811
    gateway,
    make_customer_key,
):
    _api_key, plaintext = make_customer_key(allowed_ips=["203.0.113.0/24"])
    assert error_of(exchange(gateway, plaintext, client_ip=CLIENT_IP))["error"] == "invalid_request"
    url = reverse("admin:tokens_m2mapplication_change", args=[gateway.application.pk])
    assert "may_report_client_ip" in staff_client.get(url).content.decode()
    form = _admin_form(gateway.application, may_exchange_api_keys="on", may_report_client_ip="on")
    response = staff_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert M2MApplication.objects.get(pk=gateway.application.pk).may_report_client_ip is True
    event = AuditEvent.objects.get(action="tokens.m2m_app.client_ip_reporting_allowed")
    assert event.actor == staff_client.staff and event.target_id == str(gateway.application.pk)
    assert exchange(gateway, plaintext, client_ip=CLIENT_IP).status_code == 200

    response = staff_client.post(url, _admin_form(gateway.application, may_exchange_api_keys="on"))
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="tokens.m2m_app.client_ip_reporting_disallowed").count() == 1
    assert error_of(exchange(gateway, plaintext, client_ip=CLIENT_IP))["error"] == "invalid_request"


def test_the_application_page_shows_the_mark(trusted_gateway, other_organization, outsider):
    client = Client()
    client.force_login(outsider)
    url = reverse("org-app-detail", args=[other_organization.slug, trusted_gateway.application.pk])
    page = client.get(url).content.decode()
    assert "Trusted to report client addresses" in page
