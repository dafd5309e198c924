"""The copy button (`data-copy-target`) puts the element's text on the clipboard and says so."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import copy_and_read_clipboard, record_problems, revealed_secret

pytestmark = pytest.mark.e2e

# A stand-in for the one-time reveal: the markup the credential pages use, added to a real
# page so portal.js (served by the live server) handles it.
REVEAL_MARKUP = """() => {
    const box = document.createElement('div');
    box.className = 'secret-box';
    box.innerHTML = '<code id="secret-value"> ipk_test_abc123XYZ </code>'
        + '<button type="button" class="btn" data-copy-target="secret-value">Copy</button>';
    document.querySelector('main').prepend(box);
}"""


def test_copy_button_copies_the_secret(user_page, owner, organization):
    page = user_page(owner)
    problems = record_problems(page)
    page.goto("/orgs/acme/")
    page.evaluate(REVEAL_MARKUP)

    button = page.locator("[data-copy-target=secret-value]")
    expect(button).to_have_accessible_name("Copy")
    # The page's status region exists before the click, so screen readers hear what lands in it.
    status = page.locator("#copy-status")
    expect(status).to_have_attribute("role", "status")
    expect(status).to_be_empty()
    assert revealed_secret(page) == "ipk_test_abc123XYZ"
    assert copy_and_read_clipboard(page, button) == "ipk_test_abc123XYZ"
    expect(status).to_have_text("Copied to the clipboard.")
    # A second click while it says "Copied" must not make "Copied" its label for good.
    button.click()
    # The label goes back after a moment, ready for another copy.
    expect(button).to_have_text("Copy", timeout=5_000)
    assert problems == []
