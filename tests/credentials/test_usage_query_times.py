"""The usage API's `since`/`until`: offsets, naive times, the UTC echo with `Z`, and a `+` lost in a URL."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from credentials.models import UsageBucket

pytestmark = pytest.mark.django_db

URL = "/api/v1/orgs/acme/usage/"


def _bucket(organization, ref: str, start: datetime, n: int = 1) -> None:
    UsageBucket.objects.create(
        organization=organization,
        kind="api_key",
        credential_id=ref,
        granularity="hour",
        start=start,
        outcome="valid",
        count=n,
    )


@pytest.fixture
def hours(organization, make_key):
    """A key with use in four consecutive hours (1, 2, 3 and 4 valid uses), starting five hours ago."""
    key, _ = make_key()
    first = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    for i in range(4):
        _bucket(organization, key.key_id, first + timedelta(hours=i), n=i + 1)
    return key, first


def test_the_echo_is_utc_with_z_and_goes_back_into_a_url_as_it_is(owner_client, hours):
    key, first = hours
    answer = owner_client.get(URL, {"credential": key.key_id})
    assert answer.status_code == 200, answer.content
    since, until = answer.json()["since"], answer.json()["until"]
    assert since.endswith("Z") and until.endswith("Z")
    assert "+" not in since + until
    # Pasted back unencoded, as a person copies it from the answer.
    again = owner_client.get(f"{URL}?credential={key.key_id}&since={since}&until={until}")
    assert again.status_code == 200, again.content
    assert (again.json()["since"], again.json()["until"]) == (since, until)


def test_an_unencoded_plus_offset_is_read_as_the_offset(owner_client, hours):
    key, first = hours
    since = (first + timedelta(hours=1)).astimezone(ZoneInfo("Asia/Kolkata"))  # +05:30
    until = first + timedelta(hours=2)  # +00:00
    raw = f"{URL}?credential={key.key_id}&since={since.isoformat()}&until={until.isoformat()}"
    assert "+05:30" in raw and "+00:00" in raw  # a "+" the query string reads as a space
    answer = owner_client.get(raw)
    assert answer.status_code == 200, answer.content
    assert [b["valid"] for b in answer.json()["credentials"][0]["buckets"]] == [2, 3]
    assert answer.json()["since"] == (first + timedelta(hours=1)).isoformat().replace("+00:00", "Z")


def test_offsets_name_the_same_instants(owner_client, hours):
    key, first = hours
    query = {
        "credential": key.key_id,
        "since": (first + timedelta(hours=1))
        .astimezone(ZoneInfo("Pacific/Kiritimati"))
        .isoformat(),  # +14:00
        "until": (first + timedelta(hours=2)).astimezone(ZoneInfo("Etc/GMT+12")).isoformat(),  # -12:00
    }
    answer = owner_client.get(f"{URL}?{urlencode(query)}")
    assert answer.status_code == 200, answer.content
    assert [b["valid"] for b in answer.json()["credentials"][0]["buckets"]] == [2, 3]


@pytest.mark.parametrize("separator", ["T", " "])
def test_a_naive_time_is_utc(owner_client, hours, separator):
    key, first = hours
    since = (first + timedelta(hours=3)).replace(tzinfo=None).isoformat(sep=separator)
    answer = owner_client.get(f"{URL}?{urlencode({'credential': key.key_id, 'since': since})}")
    assert answer.status_code == 200, answer.content
    assert answer.json()["credentials"][0]["totals"]["valid"] == 4


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "2026-12-06T09:00 1:00"]
)
def test_out_of_range_or_malformed_times_are_field_errors(owner_client, make_key, value):
    key, _ = make_key()
    for field in ("since", "until"):
        answer = owner_client.get(f"{URL}?{urlencode({'credential': key.key_id, field: value})}")
        assert answer.status_code == 400, (field, answer.content)
        assert list(answer.json()) == [field]


def test_the_retention_hint_names_a_time_that_can_be_sent_back(owner_client, make_key):
    key, _ = make_key()
    answer = owner_client.get(
        URL, {"credential": key.key_id, "granularity": "minute", "since": "2000-01-01T00:00:00Z"}
    )
    assert answer.status_code == 400
    hinted = answer.json()["since"][0].split("start at ")[1].split(" ")[0]
    assert hinted.endswith("Z") and "+" not in hinted
    assert timezone.now() - timedelta(hours=49) < datetime.fromisoformat(hinted) < timezone.now()
