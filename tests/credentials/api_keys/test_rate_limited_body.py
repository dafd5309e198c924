"""A key over its own rate limit: the 429 detail says the wait once."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials.api_keys.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("rate_clock")
def test_rate_limited_detail_says_the_wait_once(organization, owner, scopes):
    _key, secret = api_key_create(
        organization=organization,
        name="limited",
        owner=owner,
        scopes=["orders:read"],
        actor=owner,
        rate_limit={"requests": 1, "per_seconds": 3600},
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/whoami").status_code == 200
    response = client.get("/api/v1/whoami")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "rate_limited"
    # DRF's Throttled appends "Expected available in N seconds." to the detail it is given,
    # which already says "Retry after N seconds."
    assert "Expected available" not in body["detail"], body["detail"]
