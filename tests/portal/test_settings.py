"""Start-up configuration: secrets required outside DEBUG, deploy checks, password hashing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parents[2]
STRONG = {
    "SECRET_KEY": "k2V9q8XzR4mT7wP1nL6cJ3hB5fD0sG9aE8yU2iO4pQ7rW1tZ6xC3vN5bM8kH0jF",
    "PORTAL_PEPPERS": "1:Zr8Q2mX7vL4pT9wK1nB6cH3jF5dS0gA8eY2uI4oP7q",
    "PORTAL_SIGNING_KEY_ENCRYPTION_KEY": "Jq7o4yL2-8cWmZ1pX6vT3rN9bK5hF0dS4gA8eY2uI4o=",
    "ALLOWED_HOSTS": "portal.example.com",
    "PORTAL_ISSUER": "https://portal.example.com",
}


def _manage(*args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", *STRONG}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "PORTAL_PEPPERS", "PORTAL_SIGNING_KEY_ENCRYPTION_KEY"])
def test_start_up_without_a_secret_fails_with_a_clear_message(missing):
    env = {**STRONG, "DEBUG": "0"}
    env.pop(missing)
    result = _manage("check", **env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_a_weak_secret_key_is_refused():
    result = _manage("check", **{**STRONG, "DEBUG": "0", "SECRET_KEY": "short"})
    assert result.returncode != 0 and "SECRET_KEY is too weak" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **{**STRONG, "DEBUG": "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_seed_demo_refuses_with_debug_off():
    result = _manage("seed_demo", **{**STRONG, "DEBUG": "0"})
    assert result.returncode != 0 and "refuses to run with DEBUG off" in result.stderr


def test_argon2_hashes_human_passwords():
    from django.conf import settings as django_settings

    import portal.settings as project_settings

    assert project_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert django_settings.AUTH_USER_MODEL == "portal.User"


@pytest.mark.django_db
def test_security_headers_on_pages(client):
    response = client.get("/accounts/login/")
    csp = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["frame-ancestors"] == "'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_api_docs_are_served_with_local_assets(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "<script>" not in body  # the init script is a separate request (CSP without unsafe-inline)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in body
    assert "http://" not in body.replace("http://testserver", "") and "https://" not in body
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")


@pytest.mark.parametrize(("value", "expected"), [("", "False"), ("1", "True")])
def test_transaction_pooling_disables_server_side_cursors(value, expected):
    database = "from django.conf import settings; print(settings.DATABASES['default']"
    code = database + "['DISABLE_SERVER_SIDE_CURSORS'])"
    env = {"DEBUG": "1", "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/unused"}
    if value:
        env["PORTAL_DB_TRANSACTION_POOLING"] = value
    result = _manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize(
    "peppers",
    [
        "2:short,1:Zr8Q2mX7vL4pT9wK1nB6cH3jF5dS0gA8eY2uI4oP7q",  # the current (first) pepper is weak
        "Zr8Q2mX7vL4pT9wK1nB6cH:k2V9q8XzR4mT",  # 12 characters behind a long id
    ],
)
def test_a_weak_pepper_stops_start_up_outside_debug(peppers):
    result = _manage("check", **{**STRONG, "DEBUG": "0", "PORTAL_PEPPERS": peppers})
    assert result.returncode != 0, result.stdout
    assert "PORTAL_PEPPERS" in result.stderr


def test_a_blank_base_url_falls_back_to_the_issuer():
    # .env.example ships `PORTAL_BASE_URL=`: e-mailed links must stay absolute.
    shown = "from django.conf import settings; print(repr(settings.PORTAL_BASE_URL))"
    result = _manage(
        "shell", "-c", shown, DEBUG="1", PORTAL_ISSUER="https://portal.example.com", PORTAL_BASE_URL=""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == repr("https://portal.example.com")


def test_console_email_goes_to_stderr_so_a_commands_stdout_stays_its_own():
    """`consolemail://` (the default) prints messages on stderr: `manage.py … --json | jq` reads one
    JSON document even when the command e-mails someone (portal.infra.mail)."""
    code = (
        "from django.core.mail import send_mail; from django.conf import settings; "
        "print(settings.EMAIL_BACKEND); send_mail('Subject', 'Body', None, ['a@b.example'])"
    )
    result = _manage("shell", "-c", code, DEBUG="1", EMAIL_URL="consolemail://")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "portal.infra.mail.StderrConsoleBackend"
    assert "Subject: Subject" in result.stderr and "Subject:" not in result.stdout


PRODUCTION = {**STRONG, "DEBUG": "0"}


def test_production_without_portal_issuer_stops_start_up():
    """DEBUG off without PORTAL_ISSUER started with the development issuer, http://127.0.0.1:8000:
    tokens named it as `iss`, the metadata published it and e-mailed links pointed at it."""
    env = dict(PRODUCTION)
    env.pop("PORTAL_ISSUER")
    for issuer in (None, ""):  # unset, or set but blank as in an env file
        if issuer is not None:
            env["PORTAL_ISSUER"] = issuer
        result = _manage("check", **env)
        assert result.returncode != 0, result.stdout
        assert "PORTAL_ISSUER is not set" in result.stderr


def test_a_plain_http_issuer_outside_debug_is_flagged():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **{**PRODUCTION, "PORTAL_ISSUER": "http://portal.test"},
    )
    assert result.returncode != 0 and "portal.W001" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("base_url", "check_id"),
    [
        ("portal.example.com", "portal.E002"),
        ("/relative", "portal.E002"),
        ("http://portal.example.com", "portal.W002"),
    ],
)
def test_check_deploy_flags_a_base_url_that_is_not_https(base_url, check_id):
    """PORTAL_BASE_URL, the start of every link in e-mails (invitations, password resets), was never
    checked: a bare host name made relative links, plain http sent their secrets in the clear."""
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "PORTAL_BASE_URL": base_url}
    )
    assert result.returncode != 0, result.stdout
    assert check_id in result.stderr + result.stdout and "PORTAL_BASE_URL" in result.stderr + result.stdout


def test_a_base_url_that_is_no_url_is_an_error_in_debug_too():
    result = _manage("check", DEBUG="1", PORTAL_BASE_URL="portal.example.com")
    assert result.returncode != 0 and "portal.E002" in result.stderr + result.stdout


STRONG_PEPPER = STRONG["PORTAL_PEPPERS"].partition(":")[2]
OTHER_PEPPER = "Ab8Q2mX7vL4pT9wK1nB6cH3jF5dS0gA8eY2uI4oP7q"


@pytest.mark.parametrize(
    "peppers",
    [
        f"rotation-2025-primary:{STRONG_PEPPER}",  # 21 characters: the pepper_id columns hold 16
        f"v2.0:{STRONG_PEPPER}",  # outside A-Z a-z 0-9 _ -
        f"1:{STRONG_PEPPER},1:{OTHER_PEPPER}",  # the same id twice: the last secret silently won
    ],
)
def test_a_pepper_id_that_cannot_be_stored_or_is_repeated_stops_start_up(peppers):
    """A pepper id longer than the `pepper_id` columns passed start-up, then every new credential
    failed on PostgreSQL (value too long); a repeated id kept only its last secret, so "the first
    entry makes new digests" was false."""
    result = _manage("check", **{**PRODUCTION, "PORTAL_PEPPERS": peppers})
    assert result.returncode != 0, result.stdout
    # Refused by the settings themselves (gunicorn runs no system checks), naming the variable.
    assert "PORTAL_PEPPERS" in result.stderr.strip().splitlines()[-1], result.stderr[-500:]


@pytest.mark.django_db
def test_a_long_pepper_id_is_refused_before_it_reaches_the_database(make_key, settings):
    """On PostgreSQL this was a DataError deep inside every request that makes a credential."""
    settings.PORTAL_PEPPERS = f"rotation-2025-primary:{STRONG_PEPPER}"
    with pytest.raises(ImproperlyConfigured, match="PORTAL_PEPPERS"):
        make_key()


def test_check_deploy_flags_insecure_localhost_webhooks_outside_debug():
    """tokens.W001 flags PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST and portal.W010 the WebAuthn one;
    the webhook switch (http:// and loopback destinations) passed `check --deploy` in silence."""
    env = {**PRODUCTION, "PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST": "1"}
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode != 0, result.stdout
    assert "credentials.W001" in result.stdout + result.stderr
    assert "PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST" in result.stdout + result.stderr
