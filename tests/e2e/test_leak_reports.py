"""A customer opens a key GitHub reported leaked: the report is the first thing on the page, at any width."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from playwright.sync_api import expect

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from tests.e2e.helpers import assert_no_horizontal_overflow, assert_panels_fit, record_problems
from tests.support.secret_scanning import keys_document, sign

pytestmark = pytest.mark.e2e

LONG_URL = (
    "https://github.com/acme-corporation/nightly-billing-export/blob/"
    "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c/config/production/settings.env"
)


@pytest.mark.parametrize("width", [390, 1280], ids=["phone", "desktop"])
def test_the_leak_is_the_first_thing_on_the_key_page(user_page, settings, organization, owner, width):
    scanner = ec.generate_private_key(ec.SECP256R1())
    settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = keys_document(("e2e", scanner))
    api_key, raw = api_key_create(
        organization=organization, name="Nightly billing export", owner=owner, scopes=[], actor=owner
    )
    body = json.dumps(
        [{"token": raw, "type": "identity_portal_api_key", "url": LONG_URL, "source": "content"}]
    )
    response = Client().post(
        "/api/v1/secret-scanning/reports",
        data=body,
        content_type="application/json",
        headers={
            "Github-Public-Key-Identifier": "e2e",
            "Github-Public-Key-Signature": sign(body.encode(), scanner),
        },
    )
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=api_key.pk).status == "revoked"

    page = user_page(owner, viewport={"width": width, "height": 800})
    problems = record_problems(page)
    page.goto(f"/orgs/acme/api-keys/{api_key.key_id}/")
    section = page.get_by_role("region", name="Leaked A secret was found in public")
    expect(section).to_be_visible()
    expect(section).to_be_in_viewport()  # without scrolling: right under the title
    expect(section).to_contain_text("It was revoked at once")
    link = section.get_by_role("link").first
    expect(link).to_have_attribute("href", LONG_URL)
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert_no_horizontal_overflow(page)
    assert_panels_fit(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Revoked")
    assert raw not in page.content()

    page.goto("/orgs/acme/inventory/")
    expect(page.locator("table tbody tr").filter(has_text="Nightly billing export")).to_contain_text("Leaked")
    assert problems == []
