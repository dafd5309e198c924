"""The credential pages at phone and desktop widths: nothing runs off the screen, the actions are in reach."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from credentials.api_keys.services import api_key_create, api_key_revoke, api_key_rotate
from portal.models import Role
from tests.e2e.helpers import assert_no_horizontal_overflow, assert_panels_fit, record_problems
from tests.e2e.test_api_keys import create_key
from tests.factories import ResourceServerFactory, ScopeFactory
from tokens.clients.services import client_secret_rotate, m2m_app_create

pytestmark = pytest.mark.e2e

WIDTHS = {"phone": 390, "desktop": 1280}
LONG_EMAIL = "a.rather.long.email.address@subsidiary.example.test"


@pytest.fixture
def credentials(organization, owner, make_member):
    """Acme with keys in every state and an application with a rotated secret, owned by a long address."""
    scopes = [
        ScopeFactory(name="orders:read", description="Read orders"),
        ScopeFactory(name="customers:read"),
        ScopeFactory(name="inventory:write"),
    ]
    names = [s.name for s in scopes]
    colleague = make_member(organization, role=Role.ADMIN, email=LONG_EMAIL)
    kwargs = {"organization": organization, "actor": owner}
    api_key_create(
        name="Nightly billing export to the finance warehouse", owner=colleague, scopes=names, **kwargs
    )
    rotated, _ = api_key_create(name="CI deploy", owner=owner, scopes=names[:1], environment="test", **kwargs)
    api_key_rotate(api_key=rotated, actor=owner, overlap=timedelta(hours=24))
    revoked, _ = api_key_create(name="Legacy import", owner=owner, scopes=names[2:], **kwargs)
    api_key_revoke(api_key=revoked, actor=owner, reason="replaced")
    ResourceServerFactory(identifier="https://warehouse.internal.example.test/api/v2/stock-levels")
    application, _ = m2m_app_create(
        name="Warehouse stock synchronisation service",
        description="Pushes stock levels to the warehouse every five minutes",
        owner=colleague,
        scopes=names,
        audiences=["https://warehouse.internal.example.test/api/v2/stock-levels"],
        **kwargs,
    )
    client_secret_rotate(application=application, actor=owner, overlap=timedelta(hours=2))
    return application


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_key_list_reveal_and_app_detail_fit(user_page, owner, credentials, width):
    page = user_page(owner, viewport={"width": width, "height": 800})
    problems = record_problems(page)

    page.goto("/orgs/acme/api-keys/")
    expect(page.locator("table tbody tr")).to_have_count(4)
    assert_no_horizontal_overflow(page)
    assert_panels_fit(page)
    expect(page.get_by_role("link", name="Create API key")).to_be_in_viewport()
    # Every key's link, status and last use are on screen, not cut off to the right.
    for row in page.locator("table tbody tr").all():
        for cell in (row.get_by_role("link"), row.locator("td").last, row.locator(".badge").first):
            cell.scroll_into_view_if_needed()
            expect(cell).to_be_in_viewport(ratio=1)
    # The column headers are there on a desktop, the stacked cells say what they are on a phone.
    header = page.get_by_role("columnheader", name="Last used")
    if width >= 1280:
        expect(header).to_be_visible()
    else:
        expect(header).to_be_hidden()
        label = page.locator("td[data-label='Last used']").first
        assert label.evaluate("el => getComputedStyle(el, '::before').content") == '"Last used"'

    create_key(page, "A key with a name long enough to wrap on a phone screen")
    assert_no_horizontal_overflow(page)
    assert_panels_fit(page)
    box = page.locator(".secret-box code").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    copy = page.locator("button[data-copy-target=api-key-secret]")
    copy.scroll_into_view_if_needed()
    expect(copy).to_be_in_viewport(ratio=1)
    stored = page.get_by_role("link", name="I have stored the key")
    stored.scroll_into_view_if_needed()
    expect(stored).to_be_in_viewport(ratio=1)

    page.goto(f"/orgs/acme/apps/{credentials.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Warehouse stock synchronisation service")
    assert_no_horizontal_overflow(page)
    assert_panels_fit(page)
    for control in (
        page.locator("button[data-copy-target=client-id]"),
        *page.get_by_role("button", name="Revoke secret").all(),
        page.get_by_label("Keep the current secret working for"),
        page.get_by_role("button", name="Rotate secret"),
        page.get_by_role("button", name="Revoke application"),
    ):
        control.scroll_into_view_if_needed()
        expect(control).to_be_in_viewport(ratio=1)
    expect(page.locator("tbody .badge-rotating")).to_have_text("Rotated")

    page.goto("/orgs/acme/apps/")
    assert_no_horizontal_overflow(page)
    assert_panels_fit(page)
    assert problems == []
