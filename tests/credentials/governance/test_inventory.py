"""The inventory: both kinds in one table, correct flags, filters, CSV = page, API, constant queries."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_request
from credentials.governance.models import SuspensionReason
from credentials.governance.ownership import credentials_orphan
from credentials.governance.reviews import credential_suspend
from tests.factories import make_api_key, make_m2m_app
from tokens.clients.services import client_secret_rotate, m2m_app_create
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed(organization, owner, member, admin_user, scopes):
    now = timezone.now()

    def key(name, **kw):
        return make_api_key(organization, member, name=name, **kw)[0]

    def app(name, who=member):
        return make_m2m_app(organization, who, name=name, scopes=["billing:read"])[0]

    key("plain key")
    api_key_request(
        organization=organization,
        name="pending key",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="x",
    )
    key("expiring key", expires_at=now + timedelta(days=5))
    suspended = key("suspended key")
    credential_suspend(credential=suspended, actor=owner, reason=SuspensionReason.MANUAL)
    app("plain app")
    app("orphan app", who=admin_user)
    credentials_orphan(organization=organization, user=admin_user, actor=owner)
    unused = app("unused app")
    M2MApplication.objects.filter(pk=unused.pk).update(created=now - timedelta(days=40))
    overdue = app("overdue app")
    M2MApplication.objects.filter(pk=overdue.pk).update(review_due_at=now - timedelta(days=1))
    used_key = key("used key")
    ApiKey.objects.filter(pk=used_key.pk).update(
        created_at=now - timedelta(days=60), last_used_at=now - timedelta(days=2)
    )


EXPECTED_FLAGS = {
    "plain key": [],
    "pending key": ["pending"],
    "expiring key": ["expiring"],
    "suspended key": ["suspended"],
    "plain app": [],
    "orphan app": ["orphaned"],
    "unused app": ["unused"],
    "overdue app": ["review_overdue"],
    "used key": [],
}


def _api(client, organization, query=""):
    response = client.get(f"/api/v1/orgs/{organization.slug}/inventory/{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_both_kinds_with_correct_flags(mixed, owner_client, organization):
    body = _api(owner_client, organization)
    assert body["count"] == len(EXPECTED_FLAGS)
    rows = {r["name"]: r for r in body["results"]}
    assert {name: rows[name]["flags"] for name in EXPECTED_FLAGS} == EXPECTED_FLAGS
    assert rows["plain key"]["kind"] == "api_key" and rows["plain key"]["lifecycle"] == "standing"
    assert rows["plain app"]["kind"] == "m2m_app" and rows["plain app"]["lifecycle"] == "token-minting"
    assert rows["plain app"]["scopes"] == ["billing:read"] and rows["plain key"]["scopes"] == ["orders:read"]
    assert rows["pending key"]["status"] == "pending" and rows["suspended key"]["status"] == "suspended"
    assert rows["orphan app"]["owner"] == "admin@acme.test"
    page = owner_client.get(reverse("org-inventory", kwargs={"org_slug": organization.slug})).content.decode()
    for name in EXPECTED_FLAGS:
        assert name in page
    assert "Review overdue" in page and "Unused for 30+ days" in page and "Orphaned" in page


@pytest.mark.parametrize(
    "query,names",
    [
        ("?flag=pending", {"pending key"}),
        ("?flag=orphaned", {"orphan app"}),
        ("?flag=review_overdue", {"overdue app"}),
        ("?flag=expiring", {"expiring key"}),
        ("?flag=unused", {"unused app"}),
        ("?flag=suspended", {"suspended key"}),
        ("?kind=m2m_app", {"plain app", "orphan app", "unused app", "overdue app"}),
        ("?status=suspended", {"suspended key"}),
        ("?q=expiring", {"expiring key"}),
        ("?scope=billing:read", {"plain app", "orphan app", "unused app", "overdue app"}),
        (
            "?scope=orders:read&kind=api_key",
            {"plain key", "pending key", "expiring key", "suspended key", "used key"},
        ),
    ],
)
def test_filters(mixed, owner_client, organization, query, names):
    assert {r["name"] for r in _api(owner_client, organization, query)["results"]} == names


def test_owner_filter(mixed, owner_client, organization, admin_user):
    body = _api(owner_client, organization, f"?owner={admin_user.pk}")
    assert [r["name"] for r in body["results"]] == ["orphan app"]


def test_csv_matches_the_page(mixed, owner_client, organization):
    base = reverse("org-inventory", kwargs={"org_slug": organization.slug})
    for query in ("", "?kind=api_key", "?flag=orphaned"):
        export = owner_client.get(
            reverse("org-inventory-csv", kwargs={"org_slug": organization.slug}) + query
        )
        assert export["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
        api_rows = _api(owner_client, organization, query)["results"]
        assert [r["name"] for r in rows] == [r["name"] for r in api_rows]
        assert [r["flags"] for r in rows] == [" ".join(r["flags"]) for r in api_rows]
        page = owner_client.get(base + query).content.decode()
        positions = [page.index(f">{r['name']}</a>") for r in rows]
        assert positions == sorted(positions)  # same rows, same order as the page


def test_csv_neutralises_formulas(owner_client, organization, member, scopes):
    api_key_create(organization=organization, name="=HYPERLINK(1)", owner=member, scopes=[], actor=member)
    export = owner_client.get(reverse("org-inventory-csv", kwargs={"org_slug": organization.slug}))
    assert "'=HYPERLINK(1)" in b"".join(export.streaming_content).decode()


def _populate(organization, member, n):
    for i in range(n):
        api_key_create(
            organization=organization, name=f"k{i}", owner=member, scopes=["orders:read"], actor=member
        )
        m2m_app_create(
            organization=organization, name=f"a{i}", owner=member, scopes=["billing:read"], actor=member
        )


def test_page_query_count_does_not_grow(
    owner_client, organization, member, scopes, django_assert_max_num_queries
):
    url = reverse("org-inventory", kwargs={"org_slug": organization.slug})
    api = f"/api/v1/orgs/{organization.slug}/inventory/"
    _populate(organization, member, 3)
    with CaptureQueriesContext(connection) as small:
        assert owner_client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as small_api:
        owner_client.get(api)
    _populate(organization, member, 40)
    with django_assert_max_num_queries(len(small)):
        assert owner_client.get(url).status_code == 200
    with django_assert_max_num_queries(len(small)):
        assert owner_client.get(url + "?page=2").status_code == 200
    with django_assert_max_num_queries(len(small_api)):
        assert owner_client.get(api).json()["count"] == 86
    assert len(small) <= 12


def test_inventory_api_with_a_key(organization, owner, member, scopes, client):
    _reader, secret = api_key_create(
        organization=organization, name="reader", owner=owner, scopes=["inventory:read"], actor=owner
    )
    _other, plain = api_key_create(
        organization=organization, name="other", owner=owner, scopes=[], actor=owner
    )
    response = client.get(
        f"/api/v1/orgs/{organization.slug}/inventory/", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 200 and response.json()["count"] == 2
    assert (
        client.get(
            f"/api/v1/orgs/{organization.slug}/inventory/", HTTP_AUTHORIZATION=f"Bearer {plain}"
        ).status_code
        == 403
    )
    assert (
        client.get("/api/v1/orgs/globex/inventory/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 404
    )
    assert client.get(f"/api/v1/orgs/{organization.slug}/inventory/").status_code in (401, 403)


def test_inventory_api_rejects_bad_input(owner_client, organization):
    assert owner_client.get(f"/api/v1/orgs/{organization.slug}/inventory/?flag=nope").status_code == 400
    assert owner_client.get(f"/api/v1/orgs/{organization.slug}/inventory/?page=x").status_code == 400
    assert owner_client.get(f"/api/v1/orgs/{organization.slug}/inventory/?page=9").status_code == 404


def test_pages_cover_every_row_once_in_order(owner_client, organization, member, scopes):
    now = timezone.now()
    for i in range(13):
        key, _ = api_key_create(
            organization=organization, name=f"key {i}", owner=member, scopes=[], actor=member
        )
        ApiKey.objects.filter(pk=key.pk).update(created_at=now - timedelta(minutes=3 * i))
        app, _ = m2m_app_create(organization=organization, name=f"app {i}", owner=member, actor=member)
        M2MApplication.objects.filter(pk=app.pk).update(
            created=now - timedelta(minutes=3 * i + (1 if i % 2 else -1))
        )
    names = []
    for number in range(1, 5):
        body = _api(owner_client, organization, f"?page_size=7&page={number}")
        names += [r["name"] for r in body["results"]]
    export = owner_client.get(reverse("org-inventory-csv", kwargs={"org_slug": organization.slug}))
    csv_names = [r["name"] for r in csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode()))]
    assert len(names) == 26 and len(set(names)) == 26
    assert names == csv_names
    created = [r["created"] for r in _api(owner_client, organization, "?page_size=26")["results"]]
    assert created == sorted(created, reverse=True)


def test_an_empty_inventory_answers_an_empty_first_page(owner_client, organization):
    """Regression (found by the schema fuzzer on PostgreSQL): an empty page was a 500."""
    response = owner_client.get(f"/api/v1/orgs/{organization.slug}/inventory/")
    assert response.status_code == 200
    assert response.json()["count"] == 0 and response.json()["results"] == []
    page = owner_client.get(f"/orgs/{organization.slug}/inventory/")
    assert page.status_code == 200


def test_an_application_whose_every_secret_expired_is_expired(owner_client, organization, member, scopes):
    """It can get no token any more: `expired` as a key past its expiry, on the page's filter too."""
    now = timezone.now()
    stopped, _secret = make_m2m_app(organization, member, name="stopped app", scopes=["billing:read"])
    ClientSecret.objects.filter(application=stopped).update(expires_at=now - timedelta(minutes=5))
    rotated, _secret = make_m2m_app(organization, member, name="rotated app", scopes=["billing:read"])
    client_secret_rotate(application=rotated, actor=member, overlap=timedelta(0))  # the old one stops
    rows = {row["name"]: row for row in _api(owner_client, organization)["results"]}
    assert rows["stopped app"]["status"] == "expired"
    assert rows["stopped app"]["expires"] is not None
    assert rows["rotated app"]["status"] == "active"
    assert [row["name"] for row in _api(owner_client, organization, "?status=expired")["results"]] == [
        "stopped app"
    ]
