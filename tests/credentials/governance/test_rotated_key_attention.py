"""A rotated-away API key is not "needs attention": its successor carries on.

The end of a rotation's overlap is the rotation working as designed (the lifecycle notices leave
it out too), and once the predecessor has expired, the review date it shares with its successor
is the successor's business alone: the overview, the inventory (page and API) and the
credential's page agree.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_rotate
from credentials.governance.attention import attention_counts

pytestmark = pytest.mark.django_db


def _key(organization, owner, name="Billing export"):
    api_key, _ = api_key_create(
        organization=organization, name=name, owner=owner, scopes=["orders:read"], actor=owner
    )
    return api_key


def _home_count(client, organization, item: str) -> int:
    home = client.get(reverse("org-home", kwargs={"org_slug": organization.slug})).content.decode()
    match = re.search(rf'data-attention="{item}"><span class="attention-count">(\d+)</span>', home)
    assert match, item
    return int(match.group(1))


def _inventory_row(client, organization, key_id: str) -> str:
    page = client.get(reverse("org-inventory", kwargs={"org_slug": organization.slug})).content.decode()
    rows = [
        row
        for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)
        if f'<code class="small">{key_id}</code>' in row
    ]
    assert len(rows) == 1, key_id
    return rows[0]


def _api_rows(client, organization, query: str = "") -> dict[str, dict]:
    response = client.get(f"/api/v1/orgs/{organization.slug}/inventory/?{query}")
    assert response.status_code == 200, response.content
    return {row["id"]: row for row in response.json()["results"]}


def test_a_rotated_key_in_its_overlap_is_not_expiring_attention(owner_client, organization, owner, scopes):
    old = _key(organization, owner)
    successor, _ = api_key_rotate(api_key=old, actor=owner, overlap=timedelta(hours=24))
    # A key that really ends within 14 days still needs attention.
    ending = _key(organization, owner, name="Ends soon")
    ApiKey.objects.filter(pk=ending.pk).update(expires_at=timezone.now() + timedelta(days=3))

    assert attention_counts(organization)["expiring"] == 1
    assert _home_count(owner_client, organization, "expiring") == 1
    assert set(_api_rows(owner_client, organization, "attention=expiring")) == {ending.key_id}
    assert set(_api_rows(owner_client, organization, "flag=expiring")) == {ending.key_id}

    rows = _api_rows(owner_client, organization)
    # The REST status stays `active` (the status filter speaks of it); only the flag goes.
    assert (rows[old.key_id]["status"], rows[old.key_id]["flags"]) == ("active", [])
    assert "expiring" in rows[ending.key_id]["flags"]

    row = _inventory_row(owner_client, organization, old.key_id)
    assert "Expires within 14 days" not in row
    assert ">Rotated</span>" in row and "works until" in row and ">Active</span>" not in row
    assert ">Active</span>" in _inventory_row(owner_client, organization, successor.key_id)


def test_an_expired_rotated_away_key_is_not_review_overdue(owner_client, organization, owner, scopes):
    old = _key(organization, owner)
    successor, _ = api_key_rotate(api_key=old, actor=owner, overlap=timedelta(0))
    now = timezone.now()
    ApiKey.objects.filter(pk=old.pk).update(expires_at=now - timedelta(days=1))
    ApiKey.objects.filter(pk__in=[old.pk, successor.pk]).update(review_due_at=now - timedelta(days=1))

    assert attention_counts(organization)["review_overdue"] == 1
    assert _home_count(owner_client, organization, "review_overdue") == 1
    assert set(_api_rows(owner_client, organization, "attention=review_overdue")) == {successor.key_id}
    assert set(_api_rows(owner_client, organization, "flag=review_overdue")) == {successor.key_id}

    rows = _api_rows(owner_client, organization)
    assert (rows[old.key_id]["status"], rows[old.key_id]["flags"]) == ("expired", [])
    assert rows[successor.key_id]["flags"] == ["review_overdue"]
    row = _inventory_row(owner_client, organization, old.key_id)
    assert ">Expired</span>" in row and "Review overdue" not in row

    def badge(api_key) -> bool:
        url = reverse("org-api-key-detail", args=[organization.slug, api_key.key_id])
        return 'class="badge badge-warning">Review overdue</span>' in owner_client.get(url).content.decode()

    assert (badge(old), badge(successor)) == (False, True)


def test_a_rotated_key_in_its_overlap_is_not_review_overdue_beside_its_successor(
    owner_client, organization, owner, scopes
):
    """The successor inherits the review date; during the overlap only it is overdue (one working
    integration, one review), as the notices and the automatic suspension see it."""
    old = _key(organization, owner)
    successor, _ = api_key_rotate(api_key=old, actor=owner, overlap=timedelta(hours=24))
    ApiKey.objects.filter(pk__in=[old.pk, successor.pk]).update(
        review_due_at=timezone.now() - timedelta(days=1)
    )

    assert attention_counts(organization)["review_overdue"] == 1
    assert set(_api_rows(owner_client, organization, "attention=review_overdue")) == {successor.key_id}
    assert _api_rows(owner_client, organization)[old.key_id]["flags"] == []


def test_an_expired_keys_page_offers_no_review(owner_client, organization, owner, scopes):
    old = _key(organization, owner)
    successor, _ = api_key_rotate(api_key=old, actor=owner, overlap=timedelta(hours=24))
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    def page(key):
        url = reverse("org-api-key-detail", kwargs={"org_slug": organization.slug, "key_id": key.key_id})
        return owner_client.get(url).context

    assert page(old)["gov_review_form"] is None and page(old)["gov_can_review"] is False
    assert page(successor)["gov_review_form"] is not None and page(successor)["gov_can_review"] is True
