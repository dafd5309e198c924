"""The inventory's usage columns and sorts, and the overview's "needs attention" hub: each count
equals the rows its link shows, for both kinds, in a bounded number of queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.services import api_key_create
from credentials.governance.attention import attention_counts
from credentials.governance.inventory_usage import spiking_refs
from credentials.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.credentials.governance.attention_world import (
    EXPECTED,
    add_buckets,
    build_world,
    day_start,
    hour_start,
)
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(organization, other_organization, owner, member, admin_user, scopes):
    return build_world(organization, other_organization, owner, member, admin_user)


def _inventory_names(client, url: str) -> set[str]:
    page = client.get(url).content.decode()
    table = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return set(re.findall(r'<td><a href="[^"]+">([^<]+)</a>', table))


def test_each_count_links_to_exactly_its_rows(world, owner_client, organization):
    home = owner_client.get(reverse("org-home", kwargs={"org_slug": organization.slug})).content.decode()
    assert "Needs attention" in home
    inventory = reverse("org-inventory", kwargs={"org_slug": organization.slug})
    for item, names in EXPECTED.items():
        link = f"{inventory}?attention={item}"
        count = rf'data-attention="{item}"><span class="attention-count">(\d+)</span>'
        match = re.search(rf'<a href="{re.escape(link)}" ' + count, home)
        assert match, item
        assert int(match.group(1)) == len(names), item
        assert _inventory_names(owner_client, link) == names, item
        api = owner_client.get(f"/api/v1/orgs/{organization.slug}/inventory/?attention={item}").json()
        assert {row["name"] for row in api["results"]} == names, item


def test_counts_match_the_filter_for_each_kind(world, organization):
    assert attention_counts(organization) == {item: len(names) for item, names in EXPECTED.items()}


def test_failing_webhooks_count_for_managers(world, owner, owner_client, member_client, organization):
    endpoint = WebhookEndpoint.objects.create(
        organization=organization, url="https://hooks.example.com/x", secret_ciphertext=b"x", created_by=owner
    )
    WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="x", payload={}, state="failed", last_attempt_at=timezone.now()
    )
    home = owner_client.get(reverse("org-home", kwargs={"org_slug": organization.slug})).content.decode()
    webhooks = reverse("org-webhooks", kwargs={"org_slug": organization.slug})
    count = r'data-attention="failing_webhooks"><span class="attention-count">1</span>'
    assert re.search(rf'<a href="{re.escape(webhooks)}" ' + count, home)
    member_home = member_client.get(reverse("org-home", kwargs={"org_slug": organization.slug})).content
    assert b"Needs attention" in member_home and b'data-attention="failing_webhooks"' not in member_home


def test_sparklines_per_kind_with_a_text_alternative(world, owner_client, organization):
    home = owner_client.get(reverse("org-home", kwargs={"org_slug": organization.slug})).content.decode()
    assert (
        home.count("<svg") >= 2
        and "<script" not in home.split("Needs attention", 1)[1].split("</section>")[0]
    )
    titles = re.findall(r"<title id=\"spark-\d+\">([^<]+)</title>", home)
    assert any(t.endswith("with 120") and "150 requests in the last 30 days" in t for t in titles), titles
    assert any("7 requests in the last 30 days" in t for t in titles), titles


def test_requests_30d_column_and_sorts(world, owner_client, organization):
    api = f"/api/v1/orgs/{organization.slug}/inventory/"
    rows = {r["name"]: r for r in owner_client.get(api).json()["results"]}
    assert rows["busy key"]["requests_30d"] == 150  # the 31-day-old bucket is outside the window
    assert rows["quiet app"]["requests_30d"] == 7
    assert rows["old key"]["requests_30d"] == 0

    by_requests = [r["name"] for r in owner_client.get(api + "?sort=-requests").json()["results"]]
    assert by_requests[:2] == ["busy key", "quiet app"]
    fewest = [r["name"] for r in owner_client.get(api + "?sort=requests").json()["results"]]
    assert fewest[-2:] == ["quiet app", "busy key"]
    recent = [r["last_used"] for r in owner_client.get(api + "?sort=-last_used").json()["results"]]
    used = [t for t in recent if t]
    assert used == sorted(used, reverse=True) and recent[: len(used)] == used  # never used last
    oldest = [r["last_used"] for r in owner_client.get(api + "?sort=last_used").json()["results"]]
    assert oldest[0] is None and [t for t in oldest if t] == sorted(used)

    page = owner_client.get(
        reverse("org-inventory", kwargs={"org_slug": organization.slug}) + "?sort=-requests"
    )
    body = page.content.decode()
    assert "Requests (30 d)" in body and 'aria-sort="descending"' in body and "sort=requests" in body
    assert owner_client.get(api + "?sort=name").status_code == 400
    assert owner_client.get(api + "?attention=everything").status_code == 400


def test_the_csv_carries_requests_and_the_sort(world, owner_client, organization):
    export = owner_client.get(
        reverse("org-inventory-csv", kwargs={"org_slug": organization.slug}) + "?sort=-requests"
    )
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert (
        lines[0].endswith(",requests_30d") and lines[1].startswith("api_key,") and lines[1].endswith(",150")
    )


def test_query_counts_do_not_grow_with_credentials(
    organization, owner, member, owner_client, scopes, django_assert_max_num_queries
):
    now = timezone.now()

    def add(n: int) -> None:
        for i in range(n):
            key, _ = api_key_create(
                organization=organization, name=f"k{i}", owner=member, scopes=["orders:read"], actor=member
            )
            app, _ = m2m_app_create(
                organization=organization, name=f"a{i}", owner=member, scopes=["billing:read"], actor=member
            )
            add_buckets(organization, "api_key", key.key_id, "day", day_start(now, 1), valid=i + 1)
            add_buckets(organization, "m2m_app", app.client_id, "hour", hour_start(now, 1), ip_denied=50)

    add(2)
    home = reverse("org-home", kwargs={"org_slug": organization.slug})
    inventory = reverse("org-inventory", kwargs={"org_slug": organization.slug})
    urls = [
        home,
        inventory + "?sort=-requests",
        inventory + "?sort=last_used",
        inventory + "?attention=denials",
    ]
    small = {}
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            assert owner_client.get(url).status_code == 200
        small[url] = len(queries)
    add(30)
    for url in urls:
        with django_assert_max_num_queries(small[url]):
            assert owner_client.get(url).status_code == 200


def test_spike_definition_edges(organization, owner, member, scopes):
    now = datetime(2026, 12, 6, 12, 30, tzinfo=UTC)
    add_buckets(organization, "api_key", "exactly3x", "hour", hour_start(now, 0), ip_denied=30)
    add_buckets(
        organization, "api_key", "exactly3x", "hour", hour_start(now, 24), ip_denied=70
    )  # 10 a day: 30 = 3×
    add_buckets(organization, "api_key", "above3x", "hour", hour_start(now, 23), ip_denied=31)
    add_buckets(organization, "api_key", "above3x", "hour", hour_start(now, 100), ip_denied=70)
    add_buckets(organization, "api_key", "new", "hour", hour_start(now, 3), rate_limited=10)
    add_buckets(organization, "api_key", "valid only", "hour", hour_start(now, 3), valid=500)
    add_buckets(organization, "api_key", "too old", "hour", hour_start(now, 24 * 9), ip_denied=500)
    assert spiking_refs(organization, now) == {"api_key": {"above3x", "new"}}
