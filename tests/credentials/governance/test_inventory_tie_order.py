"""Inventory order: the CSV export lists rows in the page's order, whatever the ties in the sort key."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from tests.factories import make_api_key, make_m2m_app
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


def _same_ids_and_same_time(organization, member, n):
    """`n` API keys and `n` applications all created in the same microsecond, key i with app i's id.

    Primary keys are per table, so an API key and an application share an id as soon as both
    tables have rows; (created, id) is then no unique key of the UNION.
    """
    when = timezone.now().replace(microsecond=123456)
    apps = [make_m2m_app(organization, member, name="same", scopes=["billing:read"])[0] for _ in range(n)]
    keys = [make_api_key(organization, member, name="same", scopes=[])[0] for _ in range(n)]
    for i, key in enumerate(keys):  # through ids no row has, so no two keys ever collide
        ApiKey.objects.filter(pk=key.pk).update(id=10_000_000 + i)
    for i, app in enumerate(apps):
        ApiKey.objects.filter(pk=10_000_000 + i).update(id=app.pk)
    ApiKey.objects.filter(organization=organization).update(created_at=when)
    M2MApplication.objects.filter(organization=organization).update(created=when)


@pytest.mark.postgres
@pytest.mark.parametrize("sort", ["", "-requests", "last_used"])
def test_csv_order_is_the_page_order_when_created_and_id_tie_across_kinds(
    sort, owner_client, organization, member, scopes
):
    """docs/governance.md: the CSV export has the "same filters and order as the page"."""
    _same_ids_and_same_time(organization, member, 40)
    pages = []
    for number in (1, 2):
        response = owner_client.get(f"/orgs/{organization.slug}/inventory/?page={number}&sort={sort}")
        pages += [(row.kind, row.ref) for row in response.context["rows"]]
    export = owner_client.get(f"/orgs/{organization.slug}/inventory/export.csv?sort={sort}")
    rows = csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode()))
    assert len(pages) == 80
    assert [(row["kind"], row["id"]) for row in rows] == pages
