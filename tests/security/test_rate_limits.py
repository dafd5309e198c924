"""Rate limits: failed client authentication, failed key verifications, token issuance, logins."""

from __future__ import annotations

import json

import pytest
from django.core.cache import caches
from django.urls import reverse

from credentials.api_keys import keys as api_keys
from portal.infra import ratelimit
from portal.infra.cache import ResilientRedisCache
from tests.security.conftest import ALL_SCOPES
from tests.tokens.conftest import basic

# The limits count in fixed one-minute windows: their clock stands still in every test here, so a
# test's requests share one window even when a minute ends between them (tests/support/clock.py).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rate_clock")]


def token_request(client, client_id, secret, **extra):
    return client.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(client_id, secret),
        **extra,
    )


def assert_oauth_429(response):
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["Cache-Control"] == "no-store"
    body = json.loads(response.content)
    assert body["error"] == "slow_down"
    assert "Retry after" in body["error_description"]


def assert_drf_429(response):
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert set(response.json()) == {"detail", "code"} and "throttled" in response.json()["detail"]
    assert response.json()["code"] == "throttled"


@pytest.fixture
def limits(settings):
    """Generous limits everywhere; each test lowers the one it exercises."""
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 100
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 100
    settings.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 100
    settings.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 100
    return settings


class TestClientAuthentication:
    def test_failures_per_client_id_then_429_even_with_the_right_secret(self, client, limits, make_app):
        limits.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 3
        app, other = make_app(), make_app(name="Other")
        for _ in range(3):
            assert token_request(client, app.client_id, "ips_wrong").status_code == 401
        assert_oauth_429(token_request(client, app.client_id, app.client_secret))
        # Body credentials name the same client and are refused alike.
        response = client.post(
            "/oauth/token",
            {
                "grant_type": "client_credentials",
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            },
        )
        assert_oauth_429(response)
        assert token_request(client, other.client_id, other.client_secret).status_code == 200

    def test_failures_per_ip_across_client_ids(self, client, limits, make_app):
        limits.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 3
        app = make_app()
        for n in range(3):
            assert token_request(client, f"guess-{n}", "ips_wrong").status_code == 401
        assert_oauth_429(token_request(client, app.client_id, app.client_secret))
        response = token_request(client, app.client_id, app.client_secret, REMOTE_ADDR="198.51.100.20")
        assert response.status_code == 200

    def test_introspection_and_revocation_share_the_count(self, client, limits, make_app):
        limits.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 2
        app = make_app()
        token = json.loads(token_request(client, app.client_id, app.client_secret).content)["access_token"]
        wrong = basic(app.client_id, "ips_wrong")
        assert client.post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=wrong).status_code == 401
        assert client.post("/oauth/revoke", {"token": token}, HTTP_AUTHORIZATION=wrong).status_code == 401
        right = basic(app.client_id, app.client_secret)
        assert_oauth_429(client.post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=right))
        assert_oauth_429(client.post("/oauth/revoke", {"token": token}, HTTP_AUTHORIZATION=right))
        assert_oauth_429(token_request(client, app.client_id, app.client_secret))

    def test_successes_are_not_counted(self, client, limits, make_app):
        limits.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 1
        limits.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 1
        app = make_app()
        for _ in range(4):
            assert token_request(client, app.client_id, app.client_secret).status_code == 200

    def test_spoofed_forwarded_for_from_an_untrusted_peer_does_not_escape(self, client, limits, make_app):
        limits.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 3
        limits.PORTAL_TRUSTED_PROXIES = []
        app = make_app()
        for n in range(3):
            response = token_request(client, f"guess-{n}", "x", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
            assert response.status_code == 401
        response = token_request(
            client, app.client_id, app.client_secret, HTTP_X_FORWARDED_FOR="203.0.113.99"
        )
        assert_oauth_429(response)

    def test_a_trusted_proxys_forwarded_for_names_the_client(self, client, limits, make_app):
        limits.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 3
        limits.PORTAL_TRUSTED_PROXIES = ["127.0.0.1"]  # the test client's REMOTE_ADDR
        app = make_app()
        for n in range(3):
            response = token_request(client, f"guess-{n}", "x", HTTP_X_FORWARDED_FOR="203.0.113.7")
            assert response.status_code == 401
        blocked = token_request(client, app.client_id, app.client_secret, HTTP_X_FORWARDED_FOR="203.0.113.7")
        assert_oauth_429(blocked)
        other = token_request(client, app.client_id, app.client_secret, HTTP_X_FORWARDED_FOR="203.0.113.8")
        assert other.status_code == 200


class TestTokenIssuance:
    def test_per_application_rate(self, client, limits, make_app):
        limits.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 2
        app, other = make_app(), make_app(name="Other")
        for _ in range(2):
            assert token_request(client, app.client_id, app.client_secret).status_code == 200
        assert_oauth_429(token_request(client, app.client_id, app.client_secret))
        assert token_request(client, other.client_id, other.client_secret).status_code == 200

    def test_failed_attempts_do_not_spend_the_applications_budget(self, client, limits, make_app):
        limits.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 2
        app = make_app()
        for _ in range(5):
            assert token_request(client, app.client_id, "ips_wrong").status_code == 401
        for _ in range(2):
            assert token_request(client, app.client_id, app.client_secret).status_code == 200

    def test_zero_switches_the_limit_off(self, client, limits, make_app):
        limits.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 0
        app = make_app()
        for _ in range(5):
            assert token_request(client, app.client_id, app.client_secret).status_code == 200


class TestApiKeyFailures:
    def test_failed_keys_per_ip_then_429_for_any_key(self, client, limits, make_key):
        limits.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 3
        _row, key = make_key(scopes=ALL_SCOPES)
        bad = key[:-1] + ("A" if key[-1] != "A" else "B")
        for header in (
            {"HTTP_AUTHORIZATION": f"Bearer {bad}"},
            {"HTTP_X_API_KEY": bad},
            {"HTTP_X_API_KEY": ""},
        ):
            assert client.get("/api/v1/whoami", **header).status_code == 401
        assert_drf_429(client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}"))
        assert_drf_429(client.get("/api/v1/whoami", HTTP_X_API_KEY=key))
        response = client.get("/api/v1/whoami", HTTP_X_API_KEY=key, REMOTE_ADDR="198.51.100.30")
        assert response.status_code == 200

    def test_central_verification_counts_invalid_keys(self, client, limits, make_key):
        limits.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 2
        _row, verifier = make_key(name="verifier", scopes=ALL_SCOPES)
        _row, target = make_key(name="target", scopes=ALL_SCOPES)
        for _ in range(2):
            # Well-formed guesses (a malformed key fails its checksum: no guess, not counted).
            _key_id, guess = api_keys.generate("live")
            response = client.post(
                "/api/v1/keys/verify",
                {"key": guess},
                "application/json",
                HTTP_X_API_KEY=verifier,
            )
            assert response.status_code == 200 and response.json()["valid"] is False
        assert_drf_429(
            client.post("/api/v1/keys/verify", {"key": target}, "application/json", HTTP_X_API_KEY=verifier)
        )

    def test_spoofed_forwarded_for_does_not_escape_but_a_trusted_proxys_does(self, client, limits, make_key):
        limits.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 2
        _row, key = make_key(scopes=ALL_SCOPES)
        for n in range(2):
            client.get(
                "/api/v1/whoami", HTTP_X_API_KEY=f"ipk_live_x{n}", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
            )
        assert_drf_429(client.get("/api/v1/whoami", HTTP_X_API_KEY=key, HTTP_X_FORWARDED_FOR="203.0.113.50"))

        limits.PORTAL_TRUSTED_PROXIES = ["198.51.100.1"]
        proxy = {"REMOTE_ADDR": "198.51.100.1"}
        for n in range(2):
            client.get(
                "/api/v1/whoami",
                HTTP_X_API_KEY=f"ipk_live_y{n}",
                HTTP_X_FORWARDED_FOR="203.0.113.60",
                **proxy,
            )
        assert_drf_429(
            client.get("/api/v1/whoami", HTTP_X_API_KEY=key, HTTP_X_FORWARDED_FOR="203.0.113.60", **proxy)
        )
        response = client.get(
            "/api/v1/whoami", HTTP_X_API_KEY=key, HTTP_X_FORWARDED_FOR="203.0.113.61", **proxy
        )
        assert response.status_code == 200

    def test_access_tokens_are_not_counted_as_key_failures(self, client, limits, make_app):
        limits.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 1
        app = make_app()
        token = json.loads(token_request(client, app.client_id, app.client_secret).content)["access_token"]
        for _ in range(3):
            assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_login_behind_a_trusted_proxy_is_counted_per_forwarded_client(client, settings, member):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "2/900s/ip,100/900s/key"}
    settings.PORTAL_TRUSTED_PROXIES = ["127.0.0.1"]
    for n in range(2):
        client.post(
            reverse("login"),
            {"login": f"x{n}@example.test", "password": "wrong"},
            HTTP_X_FORWARDED_FOR="203.0.113.5",
        )
    credentials = {"login": member.email, "password": "correct-horse-battery-staple"}
    paused = client.post(reverse("login"), credentials, HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert paused.status_code == 429 and "Too many failed sign-in attempts" in paused.content.decode()
    assert "Retry-After" in paused
    response = client.post(reverse("login"), credentials, HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert response.status_code == 302


def test_counts_are_shared_between_app_servers_through_redis(
    client, limits, make_app, redis_cache, monkeypatch
):
    limits.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 2
    app = make_app()
    for _ in range(2):
        assert token_request(client, app.client_id, "ips_wrong").status_code == 401
    # Another app server: its own connection to the same Redis, nothing shared in memory.
    other_server = caches.create_connection("default")
    assert other_server is not caches["default"] and isinstance(other_server, ResilientRedisCache)
    monkeypatch.setattr(ratelimit, "cache", other_server)
    assert_oauth_429(token_request(client, app.client_id, app.client_secret))
