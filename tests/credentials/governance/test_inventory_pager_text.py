"""The inventory's page links must not call the next page "Older" when it is sorted by something else."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.models import UsageBucket
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def test_next_page_of_most_requests_is_not_labelled_older(owner_client, organization, member, scopes):
    now = timezone.now()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # 51 keys: the older a key, the more requests it had. Sorted by most requests, page 2
    # holds the newest key.
    for i in range(51):
        key, _ = make_api_key(organization, member, name=f"key {i:02d}", scopes=[])
        ApiKey.objects.filter(pk=key.pk).update(created_at=now - timedelta(hours=51 - i))
        UsageBucket.objects.create(
            organization=organization,
            kind="api_key",
            credential_id=key.key_id,
            granularity="day",
            start=day,
            outcome="valid",
            count=1000 - i,
        )
    url = f"/orgs/{organization.slug}/inventory/?sort=-requests"
    second = owner_client.get(url + "&page=2")
    assert [row.name for row in second.context["rows"]] == ["key 50"]  # the newest key of all
    first = owner_client.get(url).content.decode()
    nav = re.search(r'<nav class="pagination".*?</nav>', first, re.S).group(0)
    next_link = re.search(r'<a [^>]*rel="next"[^>]*>(.*?)</a>', nav, re.S).group(1)
    assert "Older" not in next_link, next_link
