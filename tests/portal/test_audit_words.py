"""Audit events read the same everywhere people see them: the key page's events, an application's
activity and the overview say "API key created" with readable details, as the audit log does;
the pages show times and durations as people read them while the CSV export keeps the values."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse

from credentials.api_keys.services import api_key_rotate
from portal.audit_text import details_text
from portal.templatetags.portal_format import audit_details, duration

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return response.content.decode()


def test_credential_pages_name_events_in_words(owner_client, make_key, make_app):
    key, _ = make_key(name="Billing export")
    app = make_app(name="Invoice worker").application
    pages = {
        "key": _text(owner_client.get(reverse("org-api-key-detail", args=["acme", key.key_id]))),
        "app": _text(owner_client.get(reverse("org-app-detail", args=["acme", app.pk]))),
        "overview": _text(owner_client.get(reverse("org-home", args=["acme"]))),
    }
    assert "API key created" in pages["key"] and "scopes: orders:read" in pages["key"]
    assert "M2M application created" in pages["app"]
    assert "API key created: Billing export" in pages["overview"]
    assert "M2M application created: Invoice worker" in pages["overview"]
    for name, page in pages.items():
        assert "<code>credentials." not in page and "<code>tokens." not in page, name
        assert "[&#x27;" not in page and "expires_at: " not in page and "key_id: " not in page, name


def test_the_audit_log_shows_times_and_overlaps_as_the_pages_do(owner_client, owner, make_key):
    key, _ = make_key(name="CI deploy")
    api_key_rotate(api_key=key, actor=owner, overlap=timedelta(hours=36))
    key.refresh_from_db()
    page = _text(owner_client.get(reverse("org-audit", args=["acme"])))
    details = " | ".join(re.findall(r'<span class="muted small">(.*?)</span>', page))
    assert f"old key expires at: {key.expires_at:%Y-%m-%d %H:%M} UTC" in details
    assert "overlap: 36\xa0hours" in details
    assert "+00:00" not in details and "overlap seconds" not in details

    # The export is for spreadsheets and scripts: the recorded values, unchanged.
    export = b"".join(owner_client.get(reverse("org-audit-export", args=["acme"])).streaming_content)
    rotated = next(row for row in csv.reader(io.StringIO(export.decode())) if row[2].endswith(".rotated"))
    assert f"old key expires at: {key.expires_at.isoformat()}" in rotated[6]
    assert "overlap seconds: 129600" in rotated[6]


def test_details_for_a_page_and_for_the_export():
    extra = {
        "expires_at": "2026-12-09T01:16:20.492643+00:00",
        "overlap_seconds": 86400,
        "token_lifetime_seconds": {"from": 900, "to": None},
        "rate_limit": {"requests": 100, "per_seconds": 60},
        "next_review_due": "2027-03-01T00:00:00",
    }
    assert audit_details(extra) == (
        "expires at: 2026-12-09 01:16 UTC; next review due: 2027-03-01 00:00 UTC; overlap: 24\xa0hours; "
        "rate limit: per seconds: 60; requests: 100; token lifetime: from 15\xa0minutes to none"
    )
    assert details_text(extra) == (
        "expires at: 2026-12-09T01:16:20.492643+00:00; next review due: 2027-03-01T00:00:00; "
        "overlap seconds: 86400; rate limit: per seconds: 60; requests: 100; "
        "token lifetime seconds: from 900 to none"
    )


@pytest.mark.parametrize(
    "seconds, words",
    [
        (86400, "24\xa0hours"),
        (129600, "36\xa0hours"),
        (5400, "90\xa0minutes"),
        (2592000, "30\xa0days"),
        (90, "90\xa0seconds"),
    ],
)
def test_a_duration_is_never_rounded(seconds, words):
    assert duration(seconds) == words
