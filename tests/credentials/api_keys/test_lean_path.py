"""Machine requests without a cookie take the lean middleware path and one cache round trip.

The lean path (portal.infra.lean) must keep everything but the browser layers: security headers,
request ids, the host check, metrics and the access log. The batched read (portal.infra.hotcache)
must leave exactly one cache read per verified request once the key's snapshot and last-used
marker are cached, and change nothing about what is answered.
"""

from __future__ import annotations

import logging

import pytest
from django.core.cache import cache
from django.test import Client

from credentials.api_keys.services import api_key_revoke
from credentials.api_keys.verification import api_key_verify
from portal.infra import hotcache, lean

pytestmark = pytest.mark.django_db

WHOAMI = "/api/v1/whoami"


def test_the_lean_list_keeps_every_layer_but_the_browser_ones_in_order(settings):
    layers = lean.lean_middleware()
    assert settings.MIDDLEWARE[0] == lean.SELF
    assert layers == [m for m in settings.MIDDLEWARE[1:] if m not in settings.PORTAL_BROWSER_ONLY_MIDDLEWARE]
    for kept in (
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "portal.infra.bounds.RequestBoundsMiddleware",
        "csp.middleware.CSPMiddleware",
        "portal.infra.request_context.RequestContextMiddleware",
        "portal.infra.observability.AccessLogMiddleware",
        "portal.infra.faults.DatabaseOutageMiddleware",
        "portal.infra.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ):
        assert kept in layers
    assert "django.contrib.sessions.middleware.SessionMiddleware" not in layers
    assert "django.middleware.csrf.CsrfViewMiddleware" not in layers


def test_a_cookie_less_machine_request_skips_the_browser_layers_and_keeps_the_rest(
    make_key, api_key_client, caplog
):
    _row, plaintext = make_key()
    with caplog.at_level(logging.INFO, logger="portal.access"):
        response = api_key_client(plaintext).get(WHOAMI)
    assert response.status_code == 200
    assert not hasattr(response.wsgi_request, "session")  # SessionMiddleware did not run
    assert response["X-Request-ID"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response
    assert any(record.getMessage().startswith("GET /api/v1/whoami 200") for record in caplog.records)


def test_a_request_with_a_cookie_takes_the_full_path(make_key):
    _row, plaintext = make_key()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    client.cookies["anything"] = "1"
    response = client.get(WHOAMI)
    assert response.status_code == 200
    assert hasattr(response.wsgi_request, "session")


def test_other_paths_take_the_full_path(client):
    assert not lean.is_machine_request(client.get("/healthz").wsgi_request)
    assert lean.is_machine_request(client.get("/.well-known/jwks.json").wsgi_request)


def test_a_foreign_host_is_still_refused_on_the_lean_path(make_key, api_key_client):
    _row, plaintext = make_key()
    response = api_key_client(plaintext).get(WHOAMI, HTTP_HOST="evil.example")
    assert response.status_code == 400


@pytest.fixture
def cache_reads(monkeypatch, settings):
    """Count the cache operations the request makes (the real cache still answers them).

    Only outermost calls count: LocMemCache's get_many calls its own get once per key. The
    usage flush (a few cache writes at the end of a request, at most every
    PORTAL_USAGE_FLUSH_SECONDS) is held off, so a slow machine taking more than its 5 s
    between two requests does not add it to the request being counted.
    """
    settings.PORTAL_USAGE_FLUSH_SECONDS = 3600
    calls: list[str] = []
    depth = [0]
    for name in ("get", "get_many", "add", "set", "incr"):
        original = getattr(cache, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            if not depth[0]:
                calls.append(_name)
            depth[0] += 1
            try:
                return _original(*args, **kwargs)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(cache, name, spy)
    return calls


def test_a_verified_request_makes_one_cache_read_once_warm(make_key, api_key_client, cache_reads):
    _row, plaintext = make_key()
    client = api_key_client(plaintext)
    assert client.get(WHOAMI).status_code == 200  # fills the snapshot and the last-used marker
    cache_reads.clear()
    assert client.get(WHOAMI).status_code == 200
    assert cache_reads == ["get_many"]


def test_the_batch_sees_a_revocation_at_once(make_key, api_key_client, owner):
    row, plaintext = make_key()
    client = api_key_client(plaintext)
    assert client.get(WHOAMI).status_code == 200
    api_key_revoke(api_key=row, actor=owner, reason="test")
    assert client.get(WHOAMI).status_code == 401


def test_readers_outside_a_batch_and_keys_not_named_read_the_cache(cache_reads):
    cache.set("hot:a", 1)
    with hotcache.prefetched(["hot:a", "hot:missing"]):
        assert hotcache.get("hot:a") == 1
        assert hotcache.get("hot:missing", "default") == "default"
        assert hotcache.present("hot:a") is True
        assert hotcache.present("hot:missing") is False
        assert hotcache.present("hot:other") is None
        assert hotcache.get("hot:other") is None
        with hotcache.prefetched(["hot:a"]):  # already read by the enclosing block: no new read
            assert hotcache.get("hot:a") == 1
    assert hotcache.get("hot:a") == 1
    assert cache_reads == ["set", "get_many", "get", "get"]


def test_a_cache_without_soft_failure_falls_back_to_reading_one_by_one(monkeypatch, make_key):
    _row, plaintext = make_key()

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get_many", broken)
    with hotcache.prefetched(["x"]):
        assert hotcache.present("x") is None
        assert api_key_verify(plaintext).valid
