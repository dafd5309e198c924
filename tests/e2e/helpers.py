"""Helpers that drive the dashboard the way a person does, for the browser tests."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager

from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from playwright.sync_api import Locator, Page, expect

from tests.factories import PASSWORD

# The controls a person can reach with Tab inside a form.
_CONTROLS = "input:not([type=hidden]), select, textarea, button, a[href]"


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the real login form and wait until the browser has left it.

    A page already on the login form (say, after a redirect with `?next=`) stays there.
    """
    if "/accounts/login/" not in page.url:
        page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))


def log_out(page: Page) -> None:
    """Sign out with the button in the top bar."""
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def message(page: Page, text: str | re.Pattern) -> Locator:
    """Return the flash message containing `text` (success, error or info)."""
    return page.locator(".messages .message").filter(has_text=text)


def table_row(page: Page, text: str) -> Locator:
    """Return the one table row that mentions `text` (e.g. an email address or a key name)."""
    return page.locator("table tbody tr").filter(has_text=text)


@contextmanager
def confirming(page: Page, *, accept: bool = True):
    """Answer the next `data-confirm` dialog (window.confirm) opened inside the block.

    Yields a list that receives the dialog's message, so a test can assert what was asked.
    """
    seen: list[str] = []
    # The confirm handler is attached by the page's deferred script: on a loaded machine a click
    # can come before it runs, and the form would submit unasked.
    page.wait_for_load_state("load")

    def handle(dialog):
        seen.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", handle)
    yield seen


def revealed_secret(page: Page) -> str:
    """Return the text of the one-time secret shown in the page's `.secret-box`."""
    box = page.locator(".secret-box code")
    expect(box).to_have_count(1)
    return box.inner_text().strip()


def copy_and_read_clipboard(page: Page, button: Locator) -> str:
    """Click a `data-copy-target` button and return what landed on the clipboard."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=_origin(page.url))
    # portal.js is deferred: after a redirect the URL can match before it has run, and a click
    # then finds no listener. It has run once DOMContentLoaded fired.
    page.wait_for_load_state("domcontentloaded")
    button.click()
    expect(button).to_have_text("Copied")
    return page.evaluate("() => navigator.clipboard.readText()")


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def focused(page: Page) -> Locator:
    """Return the element that has the keyboard focus."""
    return page.locator("*:focus")


def tab_to(page: Page, target: Locator, *, max_presses: int = 40) -> int:
    """Press Tab until `target` has the focus; return how many presses it took (fail if never)."""
    for presses in range(1, max_presses + 1):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return presses
    raise AssertionError(f"{target} never received the focus after {max_presses} presses of Tab")


def assert_form_keyboard_accessible(form: Locator) -> None:
    """Check that every control in `form` has an accessible name and is reached, in order, by Tab.

    Starts from the form's first control and tabs until the focus leaves the form.
    """
    problems = form.evaluate(
        """(form, selector) => {
            const visible = el => !el.disabled && el.getClientRects().length > 0;
            const controls = [...form.querySelectorAll(selector)].filter(visible);
            const unnamed = controls.filter(el => {
                if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return false;
                const labels = el.labels ? [...el.labels] : [];
                if (labels.some(l => l.textContent.trim())) return false;
                if (el.tagName === 'BUTTON' || el.tagName === 'A') return !el.textContent.trim();
                return true;
            });
            controls.forEach((el, i) => el.setAttribute('data-e2e-tab', String(i)));
            return {count: controls.length, unnamed: unnamed.map(el => el.outerHTML.slice(0, 120))};
        }""",
        _CONTROLS,
    )
    assert problems["count"], "the form has no controls"
    assert not problems["unnamed"], f"controls without a label: {problems['unnamed']}"
    page = form.page
    form.locator('[data-e2e-tab="0"]').focus()
    order = [0]
    for _ in range(problems["count"] + 5):
        page.keyboard.press("Tab")
        index = page.evaluate(
            "() => { const el = document.activeElement; return el && el.getAttribute('data-e2e-tab'); }"
        )
        if index is None:
            break
        order.append(int(index))
    assert order == list(range(problems["count"])), (
        f"Tab visited controls {order}, expected them all in order"
    )


def record_problems(page: Page) -> list[str]:
    """Collect JavaScript errors, console errors and failed sub-resources (CSS, JS, images) of `page`.

    Call before navigating; assert the returned list is empty at the end of the test.
    """
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console error: {msg.text}"))
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and response.request.resource_type != "document"
            and problems.append(f"{response.status} for {response.url}")
        ),
    )
    page.on(
        "requestfailed",
        lambda request: (
            # A navigation (or a form post) aborts sub-resources still loading, such as the
            # favicon: that is the browser moving on, not a broken asset.
            "ERR_ABORTED" not in (request.failure or "")
            and problems.append(f"request failed: {request.url} ({request.failure})")
        ),
    )
    return problems


def assert_no_horizontal_overflow(page: Page) -> None:
    """Check that the page does not scroll sideways (nothing sticks out of the viewport)."""
    widths = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"], f"page overflows horizontally: {widths}"


def assert_panels_fit(page: Page) -> None:
    """Check that no panel scrolls sideways inside itself (a table too wide for its box, say).

    Panels clip wide content with their own scroll bar, which `assert_no_horizontal_overflow`
    cannot see: a column off to the right is as unusable as a page that scrolls.
    """
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('.panel, .filters, .secret-box')]
            .filter(el => el.scrollWidth > el.clientWidth + 1)
            .map(el => `${el.className}: ${el.scrollWidth} > ${el.clientWidth}: `
                       + el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 60))"""
    )
    assert clipped == [], f"content wider than its panel: {clipped}"


def authenticator_code(secret: str, *, margin: float = 5.0) -> str:
    """Return the authenticator-app code of now, first waiting for the next 30-second step when
    fewer than `margin` seconds are left of this one: the code must still be right when the
    browser has typed and sent it (the portal accepts the current step only)."""
    left = 30 - time.time() % 30
    if left < margin:
        time.sleep(left + 0.05)
    return format_hotp_value(hotp_value(secret, int(time.time() // 30)))
