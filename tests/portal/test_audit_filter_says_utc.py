"""The audit log's date filter says its days are UTC days, the end day included.

What was wrong: the filter labelled its dates only "From" and "To" (portal.forms.AuditFilterForm),
but the days are UTC days (portal.selectors.audit_events_for): a user in UTC+14 who filtered on
their today did not see what they did at 09:00 their time, and nothing on the page said why.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def _filter_form(html: str) -> str:
    start = html.index('role="search"')
    return html[start : html.index("</form>", start)]


def test_the_date_fields_say_utc_day(owner_client, organization):
    html = owner_client.get(reverse("org-audit", args=[organization.slug])).content.decode()

    form = _filter_form(html)
    assert '<label for="id_since">From (UTC day)</label>' in form
    assert '<label for="id_until">To (UTC day, included)</label>' in form


def test_the_days_are_utc_days_as_the_labels_say(owner_client, owner, organization):
    AuditEvent.objects.create(
        organization=organization,
        actor=owner,
        actor_label=owner.email,
        action="credentials.api_key.created",
        target_label="local morning key",
        occurred_at=datetime(2025, 6, 1, 19, 0, tzinfo=UTC),  # 2025-06-02 09:00 at UTC+14
    )
    url = reverse("org-audit", args=[organization.slug])

    local_day = owner_client.get(url, {"since": "2025-06-02", "until": "2025-06-02"}).content.decode()
    utc_day = owner_client.get(url, {"since": "2025-06-01", "until": "2025-06-01"}).content.decode()

    assert "local morning key" not in local_day and "local morning key" in utc_day
