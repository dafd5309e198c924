"""Browser-test fixtures: Chromium via Playwright against pytest-django's live server.

Use them from any `tests/e2e/test_*.py` (mark the module `pytestmark = pytest.mark.e2e`):

- `browser` — the headless Chromium, shared by the package.
- `new_context(**options)` — a fresh browser context on the live server (`base_url` set, so
  `page.goto("/orgs/acme/")` works); closed after the test; its pages are saved on failure.
- `context`, `page` — one fresh context and page per test.
- `user_page(user)` — a new context and page already signed in as `user` (session cookie,
  no login form); use it for a second or third person in a flow.
- `make_member(organization, role=..., email=...)` — a user with the factory password in an
  organisation. Helpers that drive the UI live in `tests/e2e/helpers.py` (`log_in`, …).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from portal.models import Role
from tests.e2e.browser import INSTALL_HINT, find_chromium, launch_chromium
from tests.factories import MembershipFactory, UserFactory

ARTEFACT_DIR = Path("test-output") / "e2e"
# Fail fast: a missing element should not hold the suite for Playwright's 30 s default.
ACTION_TIMEOUT_MS = 10_000
NAVIGATION_TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Return the Chromium to drive; skip without one, unless REQUIRE_E2E=1 makes that a failure."""
    executable = find_chromium()
    if executable:
        return executable
    if os.environ.get("REQUIRE_E2E") == "1":
        pytest.fail(f"REQUIRE_E2E=1 but no Chromium was found: {INSTALL_HINT}.", pytrace=False)
    pytest.skip(f"browser tests need Chromium: {INSTALL_HINT}; REQUIRE_E2E=1 turns this skip into a failure")


@pytest.fixture(scope="package")
def playwright_instance(chromium_executable):
    """Start Playwright for the e2e package and stop it when the package is done.

    Playwright's sync API keeps an asyncio loop running in this thread, and Django refuses
    database access from a thread with a running loop. While Playwright runs, the test code
    (factories, assertions on rows) talks to the database synchronously on purpose, so allow
    it — only for as long as Playwright runs.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        yield playwright
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(playwright_instance, chromium_executable):
    browser = launch_chromium(playwright_instance, chromium_executable)
    yield browser
    browser.close()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Hash passwords quickly: Argon2 costs ~0.1-0.25 s per user here, and hashing is not what these test.

    The server thread reads the same settings, so sign-in and sign-up in the browser use it too.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def _e2e_contexts(request):
    """The browser contexts opened by this test (read by the failure hook below)."""
    contexts: list = []
    request.node._e2e_contexts = contexts
    return contexts


@pytest.fixture
def new_context(request, browser, live_server, transactional_db, _e2e_contexts):
    """Return a factory of fresh browser contexts pointed at the live server."""
    if request.node.get_closest_marker("e2e") is None:
        pytest.fail("browser tests must be marked @pytest.mark.e2e (so `-m 'not e2e'` leaves them out)")

    def factory(**options):
        options.setdefault("base_url", live_server.url)
        options.setdefault("viewport", {"width": 1280, "height": 800})
        options.setdefault("locale", "en-GB")
        context = browser.new_context(**options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        _e2e_contexts.append(context)
        return context

    yield factory
    for context in _e2e_contexts:
        context.close()


@pytest.fixture
def context(new_context):
    return new_context()


@pytest.fixture
def page(context):
    return context.new_page()


def sign_in_context(context, user, live_server_url: str) -> None:
    """Give `context` a signed-in session for `user` without going through the login form."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server_url}])


@pytest.fixture
def user_page(new_context, live_server):
    """Return a factory: `user_page(user, **context_options)` -> a page signed in as `user`."""

    def factory(user, **options):
        context = new_context(**options)
        sign_in_context(context, user, live_server.url)
        return context.new_page()

    return factory


@pytest.fixture
def make_member(transactional_db):
    """Return a factory: `make_member(organization, role="member", email=None, **user_fields)` -> User.

    The user's password is `tests.factories.PASSWORD`.
    """

    def factory(organization, role: str = Role.MEMBER, email: str | None = None, **user_fields):
        if email is not None:
            user_fields["email"] = email
        return MembershipFactory(organization=organization, role=role, user=UserFactory(**user_fields)).user

    return factory


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """On a failed e2e test, save each open page's screenshot and HTML and print where they are."""
    report = yield
    contexts = getattr(item, "_e2e_contexts", None)
    if report.failed and report.when in ("setup", "call") and contexts:
        saved = _save_artefacts(item, contexts)
        if saved:
            report.sections.append(("e2e failure artefacts", "\n".join(saved)))
            print(f"\ne2e failure artefacts for {item.nodeid}:\n  " + "\n  ".join(saved))
    return report


def _save_artefacts(item, contexts) -> list[str]:
    folder = Path(item.config.rootpath) / ARTEFACT_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for c_index, context in enumerate(contexts, start=1):
        for p_index, page in enumerate(context.pages, start=1):
            stem = folder / f"context{c_index}-page{p_index}"
            try:
                page.screenshot(path=f"{stem}.png", full_page=True, timeout=5_000)
                Path(f"{stem}.html").write_text(page.content(), encoding="utf-8")
            except Exception as exc:  # noqa: BLE001  a crashed page must not hide the real failure
                saved.append(f"{stem}: could not save ({exc.__class__.__name__}: {exc})")
                continue
            saved.append(f"{stem}.png  {stem}.html  (at {page.url})")
    return saved
