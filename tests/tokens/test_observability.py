"""Operations: the access log (one line per request, request id, no secret) and the Prometheus metrics."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from credentials.api_keys.services import api_key_create
from portal.infra.observability import JsonFormatter
from portal.infra.request_context import RequestIdLogFilter
from portal.services.organizations import invitation_create
from tests.tokens.conftest import basic, request_token

pytestmark = pytest.mark.django_db


def _sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def access_log(caplog):
    """Capture the access log with request ids, the way the console handler sees it."""
    caplog.set_level(logging.INFO, logger="portal.access")
    caplog.handler.addFilter(RequestIdLogFilter())
    return caplog


def _access_records(caplog):
    return [r for r in caplog.records if r.name == "portal.access"]


def test_metrics_endpoint_is_closed_unless_an_ip_or_token_is_configured(client):
    assert client.get("/metrics").status_code == 403
    with override_settings(PORTAL_METRICS_ALLOWED_IPS=["127.0.0.0/8"]):
        response = client.get("/metrics")
        assert response.status_code == 200
        body = response.content.decode()
        assert "portal_oauth_token_requests" in body
        assert "portal_credential_verifications" in body
        assert "django_http_requests_total_by_method_total" in body  # django-prometheus
    with override_settings(PORTAL_METRICS_TOKEN="s3cret-scrape-token-0123456789"):
        assert client.get("/metrics").status_code == 403
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
        ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token-0123456789")
        assert ok.status_code == 200


def test_metrics_answer_head_as_get(client):
    assert client.head("/metrics").status_code == 403
    with override_settings(PORTAL_METRICS_ALLOWED_IPS=["127.0.0.0/8"]):
        response = client.head("/metrics")
        assert response.status_code == 200 and response.content == b""
    assert client.post("/metrics").status_code == 405


def test_metrics_ignore_a_forwarded_address_from_an_untrusted_peer(client):
    with override_settings(PORTAL_METRICS_ALLOWED_IPS=["10.0.0.5"], PORTAL_TRUSTED_PROXIES=[]):
        assert client.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.5").status_code == 403
    with override_settings(PORTAL_METRICS_ALLOWED_IPS=["10.0.0.5"], PORTAL_TRUSTED_PROXIES=["127.0.0.1"]):
        assert client.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.5").status_code == 200


def test_token_issuance_and_verification_are_counted_by_outcome(client, app, organization, owner):
    issued = _sample("portal_oauth_token_requests_total", outcome="issued")
    refused = _sample("portal_oauth_token_requests_total", outcome="invalid_client")
    timed = _sample("portal_oauth_token_seconds_count", outcome="issued")
    response = request_token(client, app)
    assert response.status_code == 200
    assert request_token(client, app, secret="ips_wrong").status_code == 401
    assert _sample("portal_oauth_token_requests_total", outcome="issued") == issued + 1
    assert _sample("portal_oauth_token_requests_total", outcome="invalid_client") == refused + 1
    assert _sample("portal_oauth_token_seconds_count", outcome="issued") == timed + 1

    jwt = response.json()["access_token"]
    valid_tokens = _sample(
        "portal_credential_verifications_total", credential_type="access_token", outcome="valid"
    )
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {jwt}").status_code == 200
    assert (
        _sample("portal_credential_verifications_total", credential_type="access_token", outcome="valid")
        == valid_tokens + 1
    )

    _key, plaintext = api_key_create(
        organization=organization, name="job", owner=owner, scopes=[], actor=owner
    )
    valid_keys = _sample("portal_credential_verifications_total", credential_type="api_key", outcome="valid")
    unknown = _sample("portal_credential_verifications_total", credential_type="api_key", outcome="not_found")
    latency = _sample("portal_credential_verification_seconds_count", credential_type="api_key")
    assert client.get("/api/v1/whoami", HTTP_X_API_KEY=plaintext).status_code == 200
    assert client.get("/api/v1/whoami", HTTP_X_API_KEY=plaintext[:-8] + "AAAAAAAA").status_code == 401
    assert (
        _sample("portal_credential_verifications_total", credential_type="api_key", outcome="valid")
        == valid_keys + 1
    )
    after_wrong = _sample(
        "portal_credential_verifications_total", credential_type="api_key", outcome="not_found"
    )
    after_malformed = _sample(
        "portal_credential_verifications_total", credential_type="api_key", outcome="malformed"
    )
    # A changed tail fails the checksum (malformed) or the digest (not_found): one of the two moved.
    assert after_wrong + after_malformed > unknown
    assert _sample("portal_credential_verification_seconds_count", credential_type="api_key") == latency + 2


def test_access_log_has_one_line_per_request_with_request_id_and_no_secret(
    client, access_log, app, organization, owner
):
    _key, plaintext = api_key_create(
        organization=organization, name="job", owner=owner, scopes=[], actor=owner
    )
    response = client.get("/api/v1/whoami?debug=1", HTTP_X_API_KEY=plaintext)
    assert response.status_code == 200
    token_response = request_token(client, app)
    jwt = token_response.json()["access_token"]
    client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {jwt}")
    client.post(
        "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id, "x")
    )

    records = _access_records(access_log)
    assert len(records) == 4
    by_key, token, by_jwt, refused = records
    assert (by_key.method, by_key.path, by_key.status) == ("GET", "/api/v1/whoami", 200)  # no query string
    assert by_key.request_id == response["X-Request-ID"]
    assert (by_key.credential_type, by_key.credential_id) == ("api_key", _key.key_id)
    assert (token.path, token.status, token.credential_type, token.credential_id) == (
        "/oauth/token",
        200,
        "m2m_client",
        app.client_id,
    )
    assert by_jwt.credential_type == "access_token"
    assert refused.status == 401 and refused.credential_type is None
    assert all(r.duration_ms >= 0 for r in records)

    formatter = JsonFormatter()
    for record in access_log.records:
        line = formatter.format(record)
        parsed = json.loads(line)
        assert parsed["request_id"] == record.request_id
        for secret in (plaintext, app.client_secret, jwt):
            assert secret not in line
            assert secret not in record.getMessage()


def test_access_log_redacts_tokens_in_the_url(client, access_log, organization, owner):
    _invitation, token = invitation_create(
        organization=organization, email="new@example.com", role="member", actor=owner
    )
    client.get(f"/invitations/{token}/")
    (record,) = _access_records(access_log)
    assert token not in record.path and token not in record.getMessage()
    assert record.path == "/invitations/[redacted]/"


@override_settings(PORTAL_METRICS_ALLOWED_IPS=["127.0.0.1"])
def test_metrics_and_health_probes_are_logged_without_credentials(access_log):
    Client().get("/metrics")
    (record,) = _access_records(access_log)
    assert (record.path, record.status, record.credential_type) == ("/metrics", 200, None)
