"""The OpenAPI schema describes the usage answer docs/usage.md pins, field by field.

What was wrong: the 200 JSON answer was declared as a free-form object (`additionalProperties: {}`),
so a client generated from /api/schema/ knew none of `granularity`, `outcomes`, `credentials`,
`totals` or `buckets`, and `granularity` declared no default.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.test import Client

from credentials import usage
from credentials.usage import OUTCOMES
from tests.security.openapi import _resolve, conformance_errors, operation

pytestmark = pytest.mark.django_db

USAGE = "/api/v1/orgs/acme/usage/"


def test_the_usage_answer_is_described_field_by_field():
    declared = _resolve(operation("GET", USAGE)["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(declared["properties"]) == {"granularity", "since", "until", "outcomes", "credentials"}
    credential = declared["properties"]["credentials"]["items"]
    assert set(credential["properties"]) == {"credential", "kind", "name", "totals", "buckets"}
    assert set(credential["properties"]["totals"]["properties"]) == set(OUTCOMES)
    assert set(credential["properties"]["buckets"]["items"]["properties"]) == {"start", *OUTCOMES}


def test_the_granularity_parameter_declares_its_default():
    (granularity,) = [p for p in operation("GET", USAGE)["parameters"] if p["name"] == "granularity"]
    assert granularity["schema"]["default"] == "hour"
    assert sorted(granularity["schema"]["enum"]) == ["day", "hour", "minute"]


def test_a_real_answer_with_buckets_matches_the_schema(owner_client, make_key):
    api_key, key = make_key()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/whoami").status_code == 200
    usage.flush()
    call_command("rollup_usage")
    response = owner_client.get(
        USAGE + "?" + urlencode({"credential": api_key.key_id, "granularity": "minute"})
    )
    assert response.status_code == 200
    body = response.json()
    assert body["credentials"][0]["buckets"], body  # a bucket to check, not an empty list
    assert conformance_errors("GET", USAGE, 200, body) == []


def test_a_day_range_past_retention_does_not_offer_a_coarser_granularity(owner_client, make_key):
    api_key, _key = make_key()
    response = owner_client.get(
        USAGE
        + "?"
        + urlencode({"credential": api_key.key_id, "granularity": "day", "since": "2020-01-01T00:00:00Z"})
    )
    assert response.status_code == 400
    assert "coarser" not in response.json()["since"][0]
