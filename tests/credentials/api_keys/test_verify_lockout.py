"""Malformed keys sent to keys/verify by a service's end users (a bad checksum is no guess) do not
count toward the failure limit of the service's own address."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.services import api_key_create

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/keys/verify"


@pytest.mark.usefixtures("rate_clock")
def test_junk_sent_by_a_services_end_users_does_not_lock_the_service_out(
    settings, organization, owner, scopes
):
    settings.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 5
    _v, verifier = api_key_create(
        organization=organization, name="verifier", owner=owner, scopes=["api_keys:verify"], actor=owner
    )
    _k, good = api_key_create(
        organization=organization, name="good", owner=owner, scopes=["orders:read"], actor=owner
    )
    service = Client(HTTP_AUTHORIZATION=f"Bearer {verifier}", REMOTE_ADDR="192.0.2.10")
    # Anonymous end users of the service send it junk (not even a well-formed key: no guess at all).
    for _ in range(5):
        body = service.post(
            VERIFY, {"key": "hello", "client_ip": "203.0.113.9"}, content_type="application/json"
        )
        assert body.json() == {"valid": False, "code": "malformed"}
    # A paying customer's good key, verified by the same service, a moment later:
    response = service.post(
        VERIFY, {"key": good, "client_ip": "198.51.100.1"}, content_type="application/json"
    )
    assert response.status_code == 200, (response.status_code, response.content)
    assert response.json()["valid"] is True
