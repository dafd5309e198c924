"""The dashboard's tables as people read them: on a phone every stacked value says what it is,
its label beside it and never over it; at 1280 px the wide tables fit their panels and an
actor's address in the audit log stays on one line."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from credentials.api_keys.services import api_key_create, api_key_rotate
from credentials.governance.reviews import credential_suspend
from credentials.models import UsageBucket
from credentials.webhooks.models import WebhookDelivery
from credentials.webhooks.services import webhook_endpoint_create
from portal.models import Role
from tests.e2e.a11y_world import build_world
from tests.e2e.helpers import assert_no_horizontal_overflow, assert_panels_fit
from tests.factories import MembershipFactory, UserFactory
from tokens.clients.services import m2m_app_create

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 900}
DESKTOP = {"width": 1280, "height": 900}
LONG_EMAIL = "a.rather.long.email.address@subsidiary.example.test"

# Cells of a stacked (phone) table that say nothing about what they are: not the row's first
# cell (its name), holding no control, with no data-label, and the header row hidden.
UNLABELLED = r"""() => [...document.querySelectorAll('main table.table')].flatMap(t => {
  const head = t.querySelector('thead');
  if (!head || head.getClientRects().length) return [];
  return [...t.querySelectorAll('tbody tr, tfoot tr')].flatMap(tr => [...tr.children].slice(1)
    .filter(td => td.tagName === 'TD' && !td.dataset.label && td.innerText.trim()
            && !td.querySelector('a, button, input, select, textarea'))
    .map(td => `${t.querySelector('caption')?.textContent.trim() || t.id}: `
               + `"${td.innerText.trim().slice(0, 30)}"`));
}).slice(0, 6)"""

# A stacked cell's label (its ::before, starting at the cell's left edge) must end before the
# cell's value begins. The label is laid out as its style says (its width, wrapping or not) in a
# probe, whose scrollWidth is the room the label's text really takes.
COLLISIONS = r"""() => [...document.querySelectorAll('main td[data-label]')]
.filter(td => td.getClientRects().length).flatMap(td => {
  const before = getComputedStyle(td, '::before');
  if (before.content === 'none' || before.display === 'none') return [];
  const probe = document.createElement('span');
  for (const p of ['font-family', 'font-size', 'font-weight', 'letter-spacing', 'text-transform',
                   'white-space', 'overflow-wrap', 'word-break', 'box-sizing', 'padding-right'])
    probe.style.setProperty(p, before.getPropertyValue(p));
  probe.style.display = 'inline-block';
  if (before.width.endsWith('px') && before.position !== 'absolute') probe.style.width = before.width;
  probe.textContent = td.dataset.label; td.closest('main').append(probe);
  const label = probe.scrollWidth - parseFloat(before.paddingRight || '0'); probe.remove();
  const range = document.createRange(); range.selectNodeContents(td);
  const lefts = [...range.getClientRects()].filter(r => r.width > 0).map(r => r.left);
  if (!lefts.length) return [];
  const room = Math.min(...lefts) - td.getBoundingClientRect().left;
  if (label <= room + 1) return [];
  return [`${td.dataset.label}: label ${Math.round(label)}px, room ${Math.round(room)}px`];
}).filter((v, i, a) => a.indexOf(v) === i)"""


@pytest.fixture
def acme(organization, owner):
    """Acme with long names and addresses, keys in several states, usage and failing deliveries."""
    world = build_world(organization, owner)
    colleague = MembershipFactory(
        organization=organization, role=Role.ADMIN, user=UserFactory(email=LONG_EMAIL)
    ).user
    names = ["orders:read", "orders:write", "billing:read"]
    kwargs = {"organization": organization, "actor": owner}
    api_key_create(
        name="Nightly billing export to the finance data warehouse (EU region)",
        owner=colleague,
        scopes=names,
        **kwargs,
    )
    rotated, _ = api_key_create(name="CI deploy", owner=owner, scopes=names[:1], environment="test", **kwargs)
    api_key_rotate(api_key=rotated, actor=owner, overlap=timedelta(hours=24))
    suspended, _ = api_key_create(name="Orphan script", owner=owner, scopes=names[:1], **kwargs)
    credential_suspend(credential=suspended, actor=None, reason="review_overdue")
    m2m_app_create(name="Warehouse stock synchronisation service", owner=colleague, scopes=names, **kwargs)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    UsageBucket.objects.bulk_create(
        UsageBucket(
            organization=organization,
            kind="m2m_app",
            credential_id=world.app.client_id,
            granularity="hour",
            start=hour - timedelta(hours=h),
            outcome=outcome,
            count=count,
        )
        for h in range(0, 24, 3)
        for outcome, count in (("valid", 120 + h), ("invalid_secret", 3))
    )
    endpoint, _ = webhook_endpoint_create(
        organization=organization,
        url="https://siem.security.acme-corporation.example/ingest/identity-portal/events",
        event_types=["revoked"],
        actor=owner,
    )
    for state in ("failed", "dead", "succeeded"):
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_type="revoked",
            payload={"type": "revoked"},
            state=state,
            attempts=3,
            last_attempt_at=timezone.now(),
            last_status_code=200 if state == "succeeded" else 503,
            next_attempt_at=timezone.now() + timedelta(minutes=5) if state == "failed" else None,
            delivered_at=timezone.now() if state == "succeeded" else None,
        )
    world.webhook = endpoint
    return world


def test_phone_tables_say_what_each_value_is_beside_it(user_page, owner, acme):
    """At 390 px the header row is hidden: every value carries its label, and no label (however
    long: "Live credentials", "Last response") runs into its value."""
    page = user_page(owner, viewport=PHONE)
    unlabelled, collisions = {}, {}
    for url in (
        "/orgs/acme/inventory/",
        "/orgs/acme/approvals/",
        f"/orgs/acme/apps/{acme.app.pk}/",
        "/orgs/acme/api-keys/",
        "/orgs/acme/apps/",
        "/orgs/acme/webhooks/",
        f"/orgs/acme/webhooks/{acme.webhook.pk}/",
        "/orgs/acme/members/",
        "/orgs/acme/audit/",
        "/accounts/sessions/",
    ):
        page.goto(url)
        assert_no_horizontal_overflow(page)
        if cells := page.evaluate(UNLABELLED):
            unlabelled[url] = cells
        if hits := page.evaluate(COLLISIONS):
            collisions[url] = hits
    assert unlabelled == {}, "stacked values without a label"
    assert collisions == {}, "labels running into their values"


def test_wide_tables_fit_their_panels_on_a_desktop(user_page, owner, acme):
    """At 1280 px the inventory's eleven columns, the approvals and the members fit beside the side
    navigation, and the audit log's actors are whole addresses on one line."""
    page = user_page(owner, viewport=DESKTOP)
    for url in ("/orgs/acme/inventory/", "/orgs/acme/approvals/", "/orgs/acme/members/"):
        page.goto(url)
        assert_panels_fit(page)
        wider = page.evaluate(
            """() => [...document.querySelectorAll('main .table-wrap')]
                .filter(el => el.scrollWidth > el.clientWidth + 1)
                .map(el => `${el.scrollWidth} > ${el.clientWidth}`)"""
        )
        assert wider == [], f"{url}: a table scrolls inside its wrapper: {wider}"
    page.goto("/orgs/acme/inventory/")
    for header in ("Name", "Kind", "Owner", "Status", "Scopes", "Created", "Expires", "Review due", "Flags"):
        assert page.get_by_role("columnheader", name=header, exact=True).is_visible(), header

    page.goto("/orgs/acme/audit/")
    lines = page.evaluate(
        """() => [...document.querySelectorAll('td[data-label=Actor]')].map(td => {
            const r = document.createRange(); r.selectNodeContents(td);
            return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; })"""
    )
    assert lines and max(lines) == 1, f"an actor's address breaks over {max(lines)} lines"
