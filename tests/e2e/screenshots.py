"""Write PNGs of the main dashboard pages into docs/images/ (`make screenshots`).

Starts a development server (`tests.support.servers.DevServer`) on a free port with a
throwaway SQLite database in var/, seeds the demo, signs in as owner@acme.example and
captures each page in SHOTS. To add a page, add a `Shot`; give it a `prepare` function when
the page needs clicks first (for example a one-time reveal: create the key in `prepare`,
then capture the page it lands on).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.browser import INSTALL_HINT, find_chromium, launch_chromium
from tests.support.secret_scanning import keys_document, public_pem, sign
from tests.support.servers import ROOT, DevServer, LocalHTTPServer

OUTPUT = ROOT / "docs" / "images"
DATABASE = ROOT / "var" / "screenshots.sqlite3"
OWNER, PASSWORD = "owner@acme.example", "demo-password"
#: Plays GitHub's secret scanning: the portal under the camera trusts its public key.
SCANNER = ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Shot:
    """One screenshot: `docs/images/<name>.png` of `path` (after `prepare`, if given)."""

    name: str
    path: str
    width: int = 1280
    height: int = 800
    signed_in: bool = True
    # Drive the UI before the capture; the capture is of the page `prepare` leaves open
    # when `path` is empty.
    prepare: Callable[[Page], None] | None = None


def invite_colleagues(page: Page) -> None:
    """Fill the demo with some activity: two pending invitations (and their audit events)."""
    for email, role in (("sam@acme.example", "Admin"), ("maria@acme.example", "Member")):
        page.goto("/orgs/acme/members/")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Role", exact=True).select_option(label=role)
        page.get_by_role("button", name="Send invitation").click()
        expect(page.locator(".message-success")).to_contain_text(email)


def _create_key(
    page: Page, name: str, scopes: tuple[str, ...], *, environment: str = "Live", days: str = ""
) -> str:
    """Create an API key through the form; return the secret its reveal page shows."""
    page.goto("/orgs/acme/api-keys/new/")
    page.get_by_label("Name").fill(name)
    for scope in scopes:
        page.get_by_role("checkbox", name=re.compile(rf"^{re.escape(scope)}( |$)")).check()
    page.get_by_label("Environment").select_option(label=environment)
    page.get_by_label("Expires in (days)").fill(days)
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    return page.locator("#api-key-secret").inner_text().strip()


def _call(url: str, *, headers: dict[str, str], data: bytes | None = None) -> dict:
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310  local URL
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  local URL
        return json.load(response)


def issue_credentials(page: Page) -> None:
    """Fill the demo with credentials through the UI: keys (used, rotated, revoked) and applications."""
    base_url = page.url.split("/orgs/")[0].split("/accounts/")[0]
    billing = _create_key(page, "Billing export", ("orders:read", "customers:read"), days="90")
    _call(f"{base_url}/api/v1/whoami", headers={"Authorization": f"Bearer {billing}"})
    _create_key(page, "CI deploy", ("orders:read", "orders:write"), environment="Test")
    page.get_by_role("link", name="I have stored the key").click()
    page.get_by_role("link", name="Rotate").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Key rotated")
    _create_key(page, "Legacy import", ("orders:write",))
    page.get_by_role("link", name="I have stored the key").click()
    page.get_by_role("link", name="Revoke").click()
    page.get_by_label("Reason").fill("Replaced by the invoice worker application")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke key").click()
    expect(page.locator(".message-success")).to_be_visible()

    for name, description, scopes in (
        ("Invoice worker", "Nightly invoice run for the billing team", ("orders:read", "customers:read")),
        ("Warehouse sync", "Pushes stock levels every five minutes", ("orders:write",)),
    ):
        page.goto("/orgs/acme/apps/new/")
        page.get_by_label("Name").fill(name)
        page.get_by_label("Description").fill(description)
        for scope in scopes:
            page.get_by_role("checkbox", name=re.compile(rf"^{re.escape(scope)}( |$)")).check()
        page.get_by_role("button", name="Create application").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    client_id = page.locator("#client-id").inner_text().strip()
    secret = page.locator("#client-secret").inner_text().strip()
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    _call(
        f"{base_url}/oauth/token",
        headers={"Authorization": f"Basic {basic}"},
        data=b"grant_type=client_credentials",
    )
    page.get_by_role("link", name="I have stored the secret").click()
    page.get_by_label("Keep the current secret working for").select_option("24")
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("New client secret")


def _base_url(page: Page) -> str:
    return page.url.split("/orgs/")[0].split("/accounts/")[0]


def add_secretless_app(page: Page) -> None:
    """Create a private_key_jwt application, register its public key and get a token with it."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    page.goto("/orgs/acme/apps/new/")
    page.get_by_label("Name").fill("Ledger export")
    page.get_by_label("Description").fill("Signs its own client assertions: no secret to leak")
    page.get_by_role("checkbox", name=re.compile(r"^orders:read( |$)")).check()
    page.get_by_label("Private key JWT (no secret)").check()
    page.get_by_role("button", name="Create application").click()
    page.get_by_label("Public key", exact=True).fill(public_pem(private_key))
    page.get_by_role("button", name="Register key").click()
    expect(page.locator(".message-success")).to_contain_text("was registered")
    client_id = page.locator("#client-id").inner_text().strip()
    token_url = f"{_base_url(page)}/oauth/token"
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now, "exp": now + 60}
    assertion = jwt.encode({**claims, "jti": secrets.token_urlsafe(16)}, private_key, algorithm="ES256")
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    _call(token_url, headers={}, data=urllib.parse.urlencode(form).encode())


def report_leaked_key(page: Page) -> None:
    """Create a key, then report it the way GitHub's secret scanning does: it is revoked."""
    leaked = _create_key(page, "Old laptop script", ("orders:read",))
    body = json.dumps(
        [
            {
                "token": leaked,
                "type": "identity_portal_api_key",
                "url": "https://github.com/acme-corp/scratch/blob/main/sync.py",
                "source": "content",
            }
        ]
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "Github-Public-Key-Identifier": "screenshots",
        "Github-Public-Key-Signature": sign(body, SCANNER),
    }
    _call(f"{_base_url(page)}/api/v1/secret-scanning/reports", headers=headers, data=body)


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802  http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def add_webhook(page: Page) -> None:
    """Add a webhook endpoint (a local receiver), send a test event and deliver it."""
    with LocalHTTPServer(_Receiver) as receiver:
        page.goto("/orgs/acme/webhooks/new/")
        page.get_by_label("URL").fill(f"{receiver.base}/portal-events")
        page.get_by_label("Description").fill("Security team's SIEM")
        for event in ("Reported leaked", "Revoked (the credential, a secret or a key)"):
            page.get_by_role("checkbox", name=event).check()
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Webhook endpoint added")
        page.reload()  # the secret is shown once; the reload lands on the endpoint's page
        page.get_by_role("button", name="Send test event").click()
        expect(page.locator(".message-success")).to_be_visible()
        _manage("deliver_webhooks", "--once", env=ENV)


def open_webhook(page: Page) -> None:
    page.goto("/orgs/acme/webhooks/")
    page.get_by_role("link", name=re.compile("portal-events")).first.click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def reveal_new_key(page: Page) -> None:
    """Create a fresh key and stay on its one-time reveal page."""
    _create_key(page, "Reporting dashboard", ("orders:read",), days="365")


def open_app(name: str) -> Callable[[Page], None]:
    def prepare(page: Page) -> None:
        page.goto("/orgs/acme/apps/")
        page.get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(name)

    return prepare


def open_key(name: str) -> Callable[[Page], None]:
    def prepare(page: Page) -> None:
        page.goto("/orgs/acme/api-keys/")
        page.get_by_role("link", name=name).first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(name)

    return prepare


def open_move(name: str) -> Callable[[Page], None]:
    """Open a key's "Move to an M2M application" confirmation (nothing is moved)."""

    def prepare(page: Page) -> None:
        open_key(name)(page)
        page.get_by_role("link", name="Move to an M2M application").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("to an M2M application")

    return prepare


def cut_over(page: Page) -> None:
    """Move a used key to an application and open the key's page while it is still used (its cut-over)."""
    base_url = _base_url(page)
    key = _create_key(page, "Stock feed", ("orders:read",))
    for _ in range(3):
        _call(f"{base_url}/api/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    page.get_by_role("link", name="I have stored the key").click()
    page.get_by_role("link", name="Move to an M2M application").click()
    page.get_by_role("button", name="Create the application and show its secret").click()
    client_id = page.locator("#client-id").inner_text().strip()
    secret = page.locator("#client-secret").inner_text().strip()
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    token = _call(
        f"{base_url}/oauth/token",
        headers={"Authorization": f"Basic {basic}"},
        data=b"grant_type=client_credentials",
    )["access_token"]
    _call(f"{base_url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    _call(f"{base_url}/api/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    page.get_by_role("link", name="I have stored the secret").click()
    page.locator("#moved-from a").click()
    for _ in range(20):  # a request rolls the usage up at most every PORTAL_USAGE_ROLLUP_SECONDS
        if "Still used 4 times" in page.locator("#cutover-use").inner_text():
            break
        time.sleep(0.5)
        page.reload()
    expect(page.locator("#cutover-use")).to_contain_text("Still used 4 times in the last hour")


# Run once, signed in as the owner, before the signed-in shots.
SETUP: list[Callable[[Page], None]] = [
    invite_colleagues,
    issue_credentials,
    add_secretless_app,
    report_leaked_key,
    add_webhook,
]

SHOTS: list[Shot] = [
    Shot("login", "/accounts/login/", signed_in=False),
    Shot("org-home", "/orgs/acme/"),
    Shot("members", "/orgs/acme/members/"),
    Shot("audit-log", "/orgs/acme/audit/"),
    Shot("members-phone", "/orgs/acme/members/", width=390, height=844),
    Shot("api-keys", "/orgs/acme/api-keys/"),
    Shot("api-key-reveal", "", prepare=reveal_new_key),
    Shot("api-key-detail", "", prepare=open_key("CI deploy")),
    Shot("api-keys-phone", "/orgs/acme/api-keys/", width=390, height=844),
    Shot("apps", "/orgs/acme/apps/"),
    Shot("app-detail", "", prepare=open_app("Warehouse sync")),
    Shot("app-detail-phone", "", width=390, height=844, prepare=open_app("Warehouse sync")),
    Shot("app-private-key-jwt", "", prepare=open_app("Ledger export")),
    Shot("api-key-leaked", "", prepare=open_key("Old laptop script")),
    Shot("webhook-detail", "", prepare=open_webhook),
    Shot("credential-choice", "/orgs/acme/credentials/new/?static_only=no&oauth=yes&keeps_private_key=no"),
    Shot("api-key-move", "", prepare=open_move("CI deploy")),
    Shot("api-key-cutover", "", prepare=cut_over),
]

#: The environment of the server under the camera (set by main, read by the setup steps).
ENV: dict[str, str] = {}


def _environment(base_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{DATABASE}",
        REDIS_URL="",
        PORTAL_BASE_URL=base_url,
        EMAIL_URL="consolemail://",
        PYTHONUNBUFFERED="1",
        PORTAL_ISSUER=base_url,
        PORTAL_SECRET_SCANNING_PUBLIC_KEYS=keys_document(("screenshots", SCANNER)),
        # Usage (and a moved key's cut-over) on the pages within seconds, not a minute.
        PORTAL_USAGE_FLUSH_SECONDS="0",
        PORTAL_USAGE_ROLLUP_SECONDS="2",
    )
    return env


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )


def _capture(page: Page, shot: Shot) -> Path:
    page.set_viewport_size({"width": shot.width, "height": shot.height})
    if shot.prepare:
        shot.prepare(page)
    if shot.path:
        page.goto(shot.path)
    page.wait_for_load_state("networkidle")
    target = OUTPUT / f"{shot.name}.png"
    page.screenshot(path=str(target), full_page=True, animations="disabled", caret="hide")
    return target


def main(only: list[str] | None = None) -> int:
    """Capture every shot, or only the ones named (`python -m tests.e2e.screenshots NAME …`)."""
    shots = [s for s in SHOTS if not only or s.name in only]
    executable = find_chromium()
    if not executable:
        print(f"make screenshots needs Chromium: {INSTALL_HINT}.", file=sys.stderr)
        return 1
    OUTPUT.mkdir(parents=True, exist_ok=True)
    DATABASE.unlink(missing_ok=True)
    server = DevServer({})
    base_url = server.base
    server.env = env = _environment(base_url)
    ENV.update(env)
    _manage("migrate", "--noinput", env=env)
    _manage("seed_demo", env=env)
    server.start()
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, executable)
            context = browser.new_context(base_url=base_url, locale="en-GB", color_scheme="light")
            context.set_default_timeout(15_000)
            page = context.new_page()
            for shot in (s for s in shots if not s.signed_in):
                print(_capture(page, shot).relative_to(ROOT))
            page.goto("/accounts/login/")
            page.get_by_label("Email").fill(OWNER)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Acme Inc")
            for step in SETUP:
                step(page)
            for shot in (s for s in shots if s.signed_in):
                print(_capture(page, shot).relative_to(ROOT))
            browser.close()
    finally:
        server.stop()
        DATABASE.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
