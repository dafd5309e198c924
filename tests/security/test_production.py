"""Production settings: secure `__Host-` cookies, HSTS, CSP, nosniff, Referrer-Policy; no debug pages.

The values are read from the real settings module in a subprocess with DEBUG off (not
restated here), then applied in-process to see what the middleware does with them; a real
gunicorn with production settings checks the headers on the wire.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client, override_settings

from tests.portal.test_settings import STRONG, _manage
from tests.support.servers import Gunicorn

PRODUCTION_SETTINGS = [
    "DEBUG",
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_NAME",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_SSL_REDIRECT",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "X_FRAME_OPTIONS",
    "CONTENT_SECURITY_POLICY",
]
KEY = "ipk_live_AbCdEfGhIjKl" + "s3cr3t" * 6 + "XyZ12A"


@pytest.fixture(scope="module")
def production() -> dict:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {PRODUCTION_SETTINGS!r}}}))"
    )
    result = _manage("shell", "-c", code, **{**STRONG, "DEBUG": "0"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_values(production):
    assert production["DEBUG"] is False
    assert production["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert production["CSRF_COOKIE_NAME"].startswith("__Host-")
    assert production["SESSION_COOKIE_SECURE"] and production["CSRF_COOKIE_SECURE"]
    assert production["SESSION_COOKIE_HTTPONLY"]
    assert production["SECURE_HSTS_SECONDS"] >= 31536000 and production["SECURE_SSL_REDIRECT"]
    directives = production["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]
    assert (
        "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
    )
    assert directives["frame-ancestors"] == ["'none'"]


def _cookie(response, name):
    cookie = response.cookies[name]
    return cookie, cookie.output()


@pytest.mark.django_db
def test_headers_and_cookies_with_production_values(production, member):
    values = {name: value for name, value in production.items() if name != "DEBUG"}
    with override_settings(**values):
        browser = Client(enforce_csrf_checks=True)
        page = browser.get("/accounts/login/", secure=True)
        assert page.status_code == 200
        csp = dict(
            part.strip().split(" ", 1) for part in page["Content-Security-Policy"].split(";") if part.strip()
        )
        assert "'unsafe-inline'" not in csp["script-src"] and csp["frame-ancestors"] == "'none'"
        assert page["Strict-Transport-Security"].startswith("max-age=31536000")
        assert page["X-Content-Type-Options"] == "nosniff"
        assert page["Referrer-Policy"] == "same-origin"
        assert page["X-Frame-Options"] == "DENY"
        csrf, text = _cookie(page, production["CSRF_COOKIE_NAME"])
        # __Host- cookies: Secure, Path=/, and no Domain, or browsers drop them.
        assert csrf["secure"] and csrf["path"] == "/" and not csrf["domain"], text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
        response = browser.post(
            "/accounts/login/",
            {
                "login": member.email,
                "password": "correct-horse-battery-staple",
                "csrfmiddlewaretoken": token,
            },
            secure=True,
            HTTP_REFERER="https://testserver/accounts/login/",
        )
        assert response.status_code == 302, response.content
        session, text = _cookie(response, production["SESSION_COOKIE_NAME"])
        assert session["secure"] and session["httponly"] and session["path"] == "/" and not session["domain"]
        assert session["samesite"] == "Lax", text
        # Plain HTTP is sent to HTTPS.
        insecure = Client().get("/accounts/login/")
        assert insecure.status_code == 301 and insecure["Location"].startswith("https://")


@pytest.mark.django_db
@pytest.mark.urls("tests.security.urls_boom")
def test_error_pages_are_plain_and_echo_nothing(settings):
    assert settings.DEBUG is False
    client = Client(raise_request_exception=False, HTTP_X_API_KEY=KEY, HTTP_AUTHORIZATION=f"Bearer {KEY}")
    for path, status, marker in (
        (f"/no-such-page/{KEY}?api_key={KEY}", 404, "Page not found"),
        (f"/boom/?client_secret={KEY}", 500, "Something went wrong on our side"),
    ):
        response = client.get(path)
        text = response.content.decode()
        assert response.status_code == status and marker in text
        assert "s3cr3t" not in text and "ipk_live_AbCdEfGhIjKl" not in text
        for debug_marker in (
            "Traceback",
            "Django tried these URL patterns",
            "DEBUG = True",
            "forced failure",
        ):
            assert debug_marker not in text


@pytest.mark.slow
def test_gunicorn_with_production_settings_sends_the_headers_and_no_debug_page(tmp_path):
    server = Gunicorn({"DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "PORTAL_PROXY_SSL_HEADER": "1"})
    server.start()
    try:
        status, body, headers = server.get(
            "/api/v1/whoami", headers={"X-Forwarded-Proto": "https", "X-API-Key": KEY}
        )
        assert status == 401 and b"s3cr3t" not in body
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        status, body, _ = server.get("/api/v1/whoami", headers={"Host": "evil.example", "X-API-Key": KEY})
        assert status == 400
        assert b"Traceback" not in body and b"DisallowedHost" not in body and b"s3cr3t" not in body
    finally:
        server.stop()
