"""The audit log in words (readable events and details) and as CSV with a date range (issue 17),
its actor filter (members and anyone who acted here), and the CSV's formula guard."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.audit_text import action_label, details_text
from portal.models import AuditEvent, Role
from portal.services import organizations as svc
from tests.factories import MembershipFactory, UserFactory, make_api_key

pytestmark = pytest.mark.django_db


def _event(organization, actor, action, when, **extra):
    event = AuditEvent.objects.create(
        action=action, organization=organization, actor=actor, actor_label=actor.email, extra=extra
    )
    AuditEvent.objects.filter(pk=event.pk).update(occurred_at=when)
    return event


def test_events_and_details_read_as_words_not_reprs():
    assert action_label("credentials.api_key.rotated") == "API key rotated"
    assert action_label("tokens.m2m_app.secret_rotated") == "M2M application secret rotated"
    assert action_label("portal.membership.role_changed") == "Membership role changed"
    assert (
        details_text({"max_lifetime_days": {"from": None, "to": 30}}) == "max lifetime days: from none to 30"
    )
    assert (
        details_text({"scopes": ["a:read", "b:write"], "via": "admin"})
        == "scopes: a:read, b:write; via: admin"
    )


def test_the_audit_page_shows_no_python_reprs(owner_client, organization, owner):
    _event(
        organization,
        owner,
        "credentials.policy.updated",
        datetime(2026, 3, 1, tzinfo=UTC),
        lifetime={"from": None, "to": 30},
    )
    page = owner_client.get(reverse("org-audit", args=[organization.slug])).content.decode()
    assert "Policy updated" in page and "lifetime: from none to 30" in page
    assert "{&#x27;from&#x27;" not in page and "None" not in page


def test_export_csv_with_a_date_range(owner_client, organization, owner):
    _event(organization, owner, "credentials.api_key.created", datetime(2026, 2, 28, 23, 59, tzinfo=UTC))
    _event(
        organization,
        owner,
        "credentials.api_key.rotated",
        datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
        overlap_hours=24,
    )
    _event(
        organization,
        owner,
        "credentials.api_key.revoked",
        datetime(2026, 3, 31, 23, 59, tzinfo=UTC),
        reason="=cmd()",
    )
    _event(organization, owner, "credentials.api_key.leaked", datetime(2026, 4, 1, 0, 0, tzinfo=UTC))
    url = reverse("org-audit-export", args=[organization.slug])
    response = owner_client.get(url, {"since": "2026-03-01", "until": "2026-03-31"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="audit-acme-2026-03-01-2026-03-31.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["time (UTC)", "event", "action", "target", "actor", "IP address", "details"]
    assert [(r[1], r[2]) for r in rows[1:]] == [
        ("API key revoked", "credentials.api_key.revoked"),
        ("API key rotated", "credentials.api_key.rotated"),
    ]
    assert rows[1][6] == "reason: =cmd()"  # not at the start of the cell: no formula
    assert rows[2][0] == "2026-03-01 00:00:00" and rows[2][6] == "overlap hours: 24"


@pytest.mark.parametrize("name", ["org-audit", "org-audit-export"])
def test_the_last_day_there_is_ends_no_range(owner_client, organization, owner, name):
    """`until` 9999-12-31 has no next day to stop before: it reads as no end, not a 500."""
    _event(organization, owner, "credentials.api_key.created", datetime(2026, 3, 1, tzinfo=UTC))
    response = owner_client.get(reverse(name, args=[organization.slug]), {"until": "9999-12-31"})
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"credentials.api_key.created" in body or b"API key created" in body


def test_export_refuses_a_reversed_range_and_members(owner_client, member_client, organization):
    url = reverse("org-audit-export", args=[organization.slug])
    bad = owner_client.get(url, {"since": "2026-03-02", "until": "2026-03-01"})
    assert bad.status_code == 400 and b"before its start" in bad.content
    assert member_client.get(url).status_code == 403


def _export_with_target(client, organization, owner, target_label: str) -> str:
    """Record one event about `target_label` and return the organisation's audit export."""
    AuditEvent.objects.create(
        action="credentials.api_key.created",
        organization=organization,
        actor=owner,
        actor_label=owner.email,
        target_label=target_label,
    )
    response = client.get(reverse("org-audit-export", args=[organization.slug]))
    return b"".join(response.streaming_content).decode()


def test_a_cell_that_looks_like_a_formula_is_text(owner_client, organization, owner):
    body = _export_with_target(owner_client, organization, owner, '=HYPERLINK("http://evil")')
    row = list(csv.reader(io.StringIO(body)))[1]
    assert row[3] == '\'=HYPERLINK("http://evil")'


def test_a_formula_after_a_semicolon_stays_text(owner_client, organization, owner):
    body = _export_with_target(owner_client, organization, owner, "x;=cmd|' /C calc'!A0")
    assert "x;'=cmd" in body
    # The cells a spreadsheet that splits on ";" reads (Excel in most European locales).
    cells = [cell for row in csv.reader(io.StringIO(body), delimiter=";") for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], body


@pytest.mark.parametrize("label", ["report\n=cmd|' /C calc'!A0", "report\r\n@SUM(1+1)*cmd|' /C calc'!A0"])
def test_a_formula_after_a_line_break_stays_text(owner_client, organization, owner, member, scopes, label):
    # Any member named their credential; the name is the audit event's target label. Names are
    # checked now (credentials.names refuses a line break): this is an event written before that.
    make_api_key(organization, member, name="report")
    AuditEvent.objects.filter(action="credentials.api_key.created").update(target_label=label)
    response = owner_client.get(reverse("org-audit-export", args=[organization.slug]))
    body = b"".join(response.streaming_content).decode()
    # The cells a spreadsheet that splits on ";" reads: the row's first field does not start with
    # a quote, so the quoted line break is a record break there and the text after it starts a
    # cell of its own.
    cells = [cell for row in csv.reader(io.StringIO(body), delimiter=";") for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], body
    # Read as RFC 4180, the name is still whole, the formula quoted as text.
    target = next(row[3] for row in csv.reader(io.StringIO(body)) if row[2] == "credentials.api_key.created")
    assert target.startswith(label.replace("\n=", "\n'=").replace("\n@", "\n'@"))


@pytest.mark.parametrize("name", ["org-audit", "org-audit-export"])
def test_the_audit_log_filters_by_an_actor_who_has_since_been_removed(
    owner_client, organization, owner, scopes, name
):
    """Investigating what a removed admin did is the audit log's first use: their events stay in
    the log (actor kept), so the actor filter (and the CSV export) must be able to select them."""
    rogue = MembershipFactory(
        organization=organization, role=Role.ADMIN, user=UserFactory(email="rogue@acme.test")
    )
    make_api_key(organization, rogue.user, name="exfil")  # an event whose actor is the admin
    svc.membership_remove(membership=rogue, actor=owner)

    response = owner_client.get(reverse(name, args=[organization.slug]), {"actor": rogue.user.pk})
    assert response.status_code == 200, (
        f"filtering the audit log by a removed admin's events is refused ({response.status_code})"
    )
    if response.streaming:
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert {row[4] for row in rows[1:]} == {"rogue@acme.test"}
        assert "credentials.api_key.created" in {row[2] for row in rows[1:]}
    else:
        listed = response.context["page"].object_list
        assert listed and {event.actor_id for event in listed} == {rogue.user.pk}
        assert "exfil" in response.content.decode()


@pytest.mark.parametrize("name", ["org-audit", "org-audit-export"])
def test_another_organisations_user_is_no_actor_here(
    owner_client, organization, other_organization, outsider, name
):
    """Offering everyone who acted here must not open the filter to any user id: another
    organisation's owner (who never acted here) is refused as any unknown value, unnamed."""
    AuditEvent.objects.create(
        action="portal.test.elsewhere",
        organization=other_organization,
        actor=outsider,
        actor_label=outsider.email,
    )
    response = owner_client.get(reverse(name, args=[organization.slug]), {"actor": outsider.pk})
    assert response.status_code == 400
    body = response.content.decode()
    assert "actor" in body and outsider.email not in body and "portal.test.elsewhere" not in body
    if name == "org-audit":
        assert "actor" in response.context["form"].errors


def test_the_audit_page_and_export_cost_the_same_whatever_the_number_of_actors(
    owner_client, organization, owner, member, django_assert_max_num_queries
):
    page = reverse("org-audit", args=[organization.slug])
    export = reverse("org-audit-export", args=[organization.slug])
    AuditEvent.objects.create(
        action="portal.test.event", organization=organization, actor=owner, actor_label=owner.email
    )
    with CaptureQueriesContext(connection) as small_page:
        assert owner_client.get(page).status_code == 200
    with CaptureQueriesContext(connection) as small_export:
        b"".join(owner_client.get(export).streaming_content)
    for i in range(15):  # members, and people who acted and left
        person = MembershipFactory(organization=organization, user=UserFactory(email=f"p{i}@acme.test"))
        AuditEvent.objects.create(
            action="portal.test.event",
            organization=organization,
            actor=person.user,
            actor_label=person.user.email,
        )
        if i % 2:
            person.delete()
    with django_assert_max_num_queries(len(small_page)):
        body = owner_client.get(page).content.decode()
    # The owner, a member who never acted, and all fifteen, left or not.
    assert body.count("@acme.test</option>") == 17
    with django_assert_max_num_queries(len(small_export)):
        b"".join(owner_client.get(export).streaming_content)
