"""Usage as CSV: the usage API's `?format=csv` / `Accept: text/csv`, and the dashboard's downloads."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from credentials import usage
from credentials.api_keys import keys
from credentials.insight.export import COLUMNS
from portal.infra.spreadsheet import safe_cell
from tests.factories import ScopeFactory
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.django_db

HEADER = [
    "credential",
    "kind",
    "name",
    "start",
    "valid",
    "invalid_secret",
    "expired",
    "revoked",
    "suspended",
    "insufficient_scope",
    "ip_denied",
    "rate_limited",
    "total",
]


@pytest.fixture(autouse=True)
def _fresh_counters():
    usage._counts.clear()
    yield
    usage._counts.clear()


def whoami(key: str):
    return Client().get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {key}")


def wrong_secret(api_key) -> str:
    return keys.generate(api_key.environment, key_id=api_key.key_id)[1]


def usage_url(*ids, org="acme", **params):
    query = "&".join([*(f"credential={i}" for i in ids), *(f"{k}={v}" for k, v in params.items())])
    return f"/api/v1/orgs/{org}/usage/?{query}"


def rows_of(response) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8", response.content[:200]
    return list(csv.reader(io.StringIO(response.content.decode())))


def record_at(monkeypatch, when: datetime, kind: str, ref: str, organization_id: int, **outcomes: int):
    """Record uses as the product does (`usage.record`), as if they happened at `when`."""
    with monkeypatch.context() as patched:
        patched.setattr(usage.time, "time", lambda: when.timestamp())
        for outcome, n in outcomes.items():
            for _ in range(n):
                usage.record(kind, ref, organization_id, outcome)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@pytest.fixture
def traffic(monkeypatch, make_key, owner):
    """Two keys and an application with use in two hours (rolled up), and a key with none."""
    first, _ = make_key(name="billing export")
    second, _ = make_key(name="reports")
    idle, _ = make_key(name="idle")
    app, _ = m2m_app_create(organization=first.organization, name="svc", owner=owner, actor=owner)
    org_id = first.organization_id
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    later = hour + timedelta(hours=1)
    record_at(
        monkeypatch, hour + timedelta(minutes=10), "api_key", first.key_id, org_id, valid=2, invalid_secret=1
    )
    record_at(monkeypatch, hour + timedelta(minutes=40), "api_key", first.key_id, org_id, valid=1)
    record_at(
        monkeypatch, later + timedelta(minutes=5), "api_key", first.key_id, org_id, valid=3, ip_denied=1
    )
    record_at(monkeypatch, later + timedelta(minutes=6), "api_key", second.key_id, org_id, rate_limited=4)
    record_at(monkeypatch, hour + timedelta(minutes=59), "m2m_app", app.client_id, org_id, valid=5, revoked=1)
    usage.rollup(now=later + timedelta(minutes=10))
    return {"first": first, "second": second, "idle": idle, "app": app, "hour": hour, "later": later}


# --- the usage API's CSV --------------------------------------------------------------------


def test_csv_has_a_row_per_credential_and_hour_with_a_column_per_outcome(owner_client, traffic):
    first, second, idle, app = traffic["first"], traffic["second"], traffic["idle"], traffic["app"]
    hour, later = traffic["hour"], traffic["later"]
    url = usage_url(
        first.key_id,
        app.client_id,
        idle.key_id,
        second.key_id,
        granularity="hour",
        since=iso(hour - timedelta(hours=1)),
        until=iso(later + timedelta(hours=1)),
        format="csv",
    )
    response = owner_client.get(url)
    assert response.status_code == 200, response.content
    rows = rows_of(response)
    assert rows[0] == HEADER == list(COLUMNS)
    h, later_h = hour.isoformat(), later.isoformat()
    # In the order asked, each credential's hours oldest first; the idle key has no row.
    assert rows[1:] == [
        [first.key_id, "api_key", "billing export", h, "3", "1", "0", "0", "0", "0", "0", "0", "4"],
        [first.key_id, "api_key", "billing export", later_h, "3", "0", "0", "0", "0", "0", "1", "0", "4"],
        [app.client_id, "m2m_app", "svc", h, "5", "0", "0", "1", "0", "0", "0", "0", "6"],
        [second.key_id, "api_key", "reports", later_h, "0", "0", "0", "0", "0", "0", "0", "4", "4"],
    ]
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="acme-usage-hour-') and disposition.endswith('.csv"')


def test_minute_csv_and_json_carry_the_same_numbers(owner_client, traffic):
    first, hour = traffic["first"], traffic["hour"]
    params = {"granularity": "minute", "since": iso(hour), "until": iso(hour + timedelta(hours=2))}
    body = owner_client.get(usage_url(first.key_id, **params)).json()
    rows = rows_of(owner_client.get(usage_url(first.key_id, format="csv", **params)))
    assert [row[3] for row in rows[1:]] == [(hour + timedelta(minutes=m)).isoformat() for m in (10, 40, 65)]
    json_rows = [
        [b["start"], *(str(b[o]) for o in usage.OUTCOMES)] for b in body["credentials"][0]["buckets"]
    ]
    assert [[row[3], *row[4:12]] for row in rows[1:]] == json_rows
    totals = body["credentials"][0]["totals"]
    assert [sum(int(row[4 + i]) for row in rows[1:]) for i in range(8)] == [totals[o] for o in usage.OUTCOMES]
    assert sum(int(row[12]) for row in rows[1:]) == sum(totals.values()) == 8


def test_accept_text_csv_answers_csv_and_json_stays_the_default(owner_client, make_key):
    api_key, key = make_key(name="live")
    whoami(key)
    whoami(key)
    whoami(wrong_secret(api_key))
    usage.rollup()  # real requests, now
    by_accept = owner_client.get(usage_url(api_key.key_id), HTTP_ACCEPT="text/csv")
    rows = rows_of(by_accept)
    assert [row[4:6] + row[12:] for row in rows[1:]] == [["2", "1", "3"]]
    assert "attachment" in by_accept["Content-Disposition"] and "Accept" in by_accept["Vary"]
    for accept in (None, "*/*", "application/json"):
        extra = {"HTTP_ACCEPT": accept} if accept else {}
        response = owner_client.get(usage_url(api_key.key_id), **extra)
        assert response["Content-Type"] == "application/json"
        assert "Content-Disposition" not in response
        assert response.json()["credentials"][0]["totals"]["valid"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "credential"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"granularity": "minute", "since": "2000-01-01T00:00:00Z"}, "since"),
        ({"granularity": "week"}, "granularity"),
        ({"since": "yesterday"}, "since"),
    ],
)
@pytest.mark.parametrize("how", ["format", "accept"])
def test_a_csv_request_with_bad_input_answers_the_json_field_error(
    owner_client, make_key, params, field, how
):
    api_key, _ = make_key()
    ids = [] if field == "credential" else [api_key.key_id]
    if how == "format":
        response = owner_client.get(usage_url(*ids, format="csv", **params))
    else:
        response = owner_client.get(usage_url(*ids, **params), HTTP_ACCEPT="text/csv")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json" and field in response.json()
    assert "Content-Disposition" not in response


def test_options_asked_for_csv_answers_the_metadata_in_json(owner_client):
    response = owner_client.options(usage_url(format="csv"), HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json()["name"]


def test_csv_tenancy_another_organisation_is_404_and_its_credential_a_field_error(
    owner_client, outsider_client, make_key, other_organization, outsider
):
    ours, key = make_key()
    theirs, their_key = make_key(organization=other_organization, owner=outsider)
    whoami(key)
    whoami(their_key)
    usage.rollup()
    hidden = outsider_client.get(usage_url(ours.key_id, format="csv"))
    assert hidden.status_code == 404 and hidden["Content-Type"] == "application/json"
    refused = owner_client.get(usage_url(theirs.key_id, format="csv"))
    assert refused.status_code == 400 and "credential" in refused.json()
    mixed = owner_client.get(usage_url(ours.key_id, theirs.key_id, format="csv"))
    assert mixed.status_code == 400 and theirs.key_id in str(mixed.json())


def test_csv_needs_usage_read(make_key, scopes):
    ScopeFactory(name="usage:read")
    target, key = make_key()
    whoami(key)
    usage.rollup()
    _, reader = make_key(name="reader", scopes=["usage:read"])
    _, other = make_key(name="other")
    ok = Client(HTTP_AUTHORIZATION=f"Bearer {reader}").get(usage_url(target.key_id, format="csv"))
    assert ok.status_code == 200 and rows_of(ok)[1][0] == target.key_id
    refused = Client(HTTP_AUTHORIZATION=f"Bearer {other}", HTTP_ACCEPT="text/csv").get(
        usage_url(target.key_id)
    )
    assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
    assert refused.json()["code"] == "insufficient_scope"
    assert Client().get(usage_url(target.key_id, format="csv")).status_code in (401, 403)


def test_csv_query_count_does_not_grow_with_credentials(
    owner_client, make_key, django_assert_max_num_queries
):
    made = [make_key(name=f"k{i}") for i in range(12)]
    for _, key in made:
        whoami(key)
    usage.rollup()
    with django_assert_max_num_queries(12) as one:
        assert owner_client.get(usage_url(made[0][0].key_id, format="csv")).status_code == 200
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = owner_client.get(usage_url(*(k.key_id for k, _ in made), format="csv"))
    assert response.status_code == 200 and len(rows_of(response)) == 13


# --- formula injection --------------------------------------------------------------------------


# (A leading tab or carriage return cannot reach a name: the service strips it; safe_cell quotes it.)
@pytest.mark.parametrize("name", ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(A1)"])
def test_a_name_a_spreadsheet_would_run_is_written_as_text(owner_client, make_key, name):
    api_key, key = make_key(name=name)
    whoami(key)
    usage.rollup()
    rows = rows_of(owner_client.get(usage_url(api_key.key_id, format="csv")))
    assert rows[1][2] == "'" + name


def test_safe_cell_leaves_ordinary_text_and_quotes_formulas():
    assert safe_cell("billing export") == "billing export"
    assert safe_cell("a=b") == "a=b"
    assert safe_cell(None) == ""
    for formula in ("=1+1", "+1", "-1", "@x", "\tx", "\rx"):
        assert safe_cell(formula) == "'" + formula
    # A spreadsheet splitting on ";" or tabs starts a new cell there: a formula after one is quoted too.
    assert safe_cell("x;=cmd|' /C calc'!A0") == "x;'=cmd|' /C calc'!A0"
    assert safe_cell("a; -1") == "a; '-1"
    assert safe_cell("a\t@b") == "a\t'@b"
    assert safe_cell("a;b, =c") == "a;b, =c"


def test_a_name_with_a_formula_after_a_semicolon_is_written_as_text(owner_client, make_key):
    api_key, key = make_key(name="x;=cmd|' /C calc'!A0")
    whoami(key)
    usage.rollup()
    rows = rows_of(owner_client.get(usage_url(api_key.key_id, format="csv")))
    assert rows[1][2] == "x;'=cmd|' /C calc'!A0"


# --- the dashboard's downloads ------------------------------------------------------------------


def key_csv_url(api_key, period: str | None = None) -> str:
    url = reverse("org-api-key-usage-csv", args=["acme", api_key.key_id])
    return f"{url}?usage={period}" if period else url


def test_the_credential_page_links_the_csv_of_the_period_shown(owner_client, make_key):
    api_key, _ = make_key()
    page = reverse("org-api-key-detail", args=["acme", api_key.key_id])
    for period in ("24h", "7d", "90d"):
        html = owner_client.get(f"{page}?usage={period}").content.decode()
        assert f'href="{key_csv_url(api_key, period)}"' in html and ">Download CSV</a>" in html


def test_the_credential_download_holds_the_period_shown(owner_client, member_client, traffic):
    first, hour, later = traffic["first"], traffic["hour"], traffic["later"]
    response = owner_client.get(key_csv_url(first, "24h"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(f'attachment; filename="acme-usage-{first.key_id}-24h-')
    rows = rows_of(response)
    assert rows == [
        HEADER,
        [
            first.key_id,
            "api_key",
            "billing export",
            hour.isoformat(),
            "3",
            "1",
            "0",
            "0",
            "0",
            "0",
            "0",
            "0",
            "4",
        ],
        [
            first.key_id,
            "api_key",
            "billing export",
            later.isoformat(),
            "3",
            "0",
            "0",
            "0",
            "0",
            "0",
            "1",
            "0",
            "4",
        ],
    ]
    # 90 days: daily rows; the same uses, whichever UTC days they fell on.
    daily = rows_of(owner_client.get(key_csv_url(first, "90d")))[1:]
    days = {hour.replace(hour=0).isoformat(), later.replace(hour=0).isoformat()}
    assert {row[3] for row in daily} == days and sum(int(row[12]) for row in daily) == 8
    # A missing or unknown period is the page's default (24 h), never an error.
    assert rows_of(owner_client.get(key_csv_url(first))) == rows
    assert rows_of(owner_client.get(key_csv_url(first, "1y"))) == rows
    # Any member of the organisation sees the usage of its credentials, as on the page.
    assert rows_of(member_client.get(key_csv_url(first, "24h"))) == rows


def test_the_application_download(owner_client, traffic):
    app = traffic["app"]
    url = reverse("org-app-usage-csv", kwargs={"org_slug": "acme", "app_id": app.pk})
    rows = rows_of(owner_client.get(f"{url}?usage=7d"))
    assert rows[1:] == [
        [
            app.client_id,
            "m2m_app",
            "svc",
            traffic["hour"].isoformat(),
            "5",
            "0",
            "0",
            "1",
            "0",
            "0",
            "0",
            "0",
            "6",
        ]
    ]


def test_another_organisations_credential_download_is_404(outsider_client, owner_client, make_key, traffic):
    first = traffic["first"]
    assert outsider_client.get(key_csv_url(first, "24h")).status_code == 404
    # Their own organisation's URL with our key id: not theirs either.
    url = reverse("org-api-key-usage-csv", args=["globex", first.key_id])
    assert outsider_client.get(url).status_code == 404
    assert owner_client.get(reverse("org-api-key-usage-csv", args=["acme", "nope"])).status_code == 404
    assert Client().get(key_csv_url(first)).status_code == 302  # sign in first


def test_the_overview_links_the_organisation_download(owner_client, traffic, make_key):
    html = owner_client.get(reverse("org-home", args=["acme"])).content.decode()
    url = reverse("org-usage-csv", args=["acme"])
    assert f'href="{url}"' in html
    response = owner_client.get(url)
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    rows = rows_of(response)
    assert rows[0] == HEADER
    per_credential: dict[str, int] = {}
    for row in rows[1:]:
        per_credential[row[0]] = per_credential.get(row[0], 0) + int(row[12])
    # Every credential with use in the last 30 days, by kind and name; the idle key has none.
    assert per_credential == {
        traffic["first"].key_id: 8,
        traffic["second"].key_id: 4,
        traffic["app"].client_id: 6,
    }
    assert [row[2] for row in rows[1:]][-1] == "svc"  # API keys first, then M2M applications


def test_the_organisation_download_is_404_for_another_organisation(outsider_client, traffic):
    assert outsider_client.get(reverse("org-usage-csv", args=["acme"])).status_code == 404


def test_the_organisation_download_query_count_does_not_grow(
    owner_client, make_key, django_assert_max_num_queries
):
    url = reverse("org-usage-csv", args=["acme"])
    made = [make_key(name=f"k{i}") for i in range(12)]
    whoami(made[0][1])
    usage.rollup()
    with django_assert_max_num_queries(15) as one:
        assert len(rows_of(owner_client.get(url))) == 2
    queries = len(one.captured_queries)  # now: the next request empties the connection's log
    for _, key in made[1:]:
        whoami(key)
    usage.rollup()
    with django_assert_max_num_queries(queries):
        assert len(rows_of(owner_client.get(url))) == 13
