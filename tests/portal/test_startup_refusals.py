"""A value the portal cannot use stops start-up where gunicorn starts it: importing portal.wsgi.

docs/configuration.md: "Whatever DEBUG says, a value that cannot be used stops start-up the same
way, naming its variable". gunicorn runs no system checks, and the values below were refused by
system checks only (tokens.E001/E002/E003, portal.E001/E020/E021) or by nothing: each passed
`import portal.wsgi` and failed at request time (a 500 at /oauth/token, every key creation
refused, client IPs read wrongly, the HTTPS redirect off) while /healthz answered 200.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest

from tests.support.servers import PRODUCTION_ENV, ROOT

#: The production environment of docs/operations.md (DEBUG off, every secret set). SQLite, which
#: the import never opens: no database server needed.
BASE_ENV = {
    **PRODUCTION_ENV,
    "DATABASE_URL": "sqlite:////tmp/portal-startup-never-opened.sqlite3",
    "PORTAL_ISSUER": "https://portal.example.com",
    "ALLOWED_HOSTS": "portal.example.com",
}

#: What gunicorn does with `portal.wsgi`: import it (Django is set up on the way).
IMPORT_WSGI = "import portal.wsgi; print('started')"


def start(values: dict[str, str], code: str = IMPORT_WSGI) -> subprocess.CompletedProcess:
    """Run `code` in a fresh process whose portal environment is `values` and nothing else."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PORTAL_", "DJANGO_", "EMAIL_")) and k not in {"DEBUG", "REDIS_URL"}
    }
    env.update(values)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def test_the_production_environment_starts():
    result = start(BASE_ENV)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_env_example_starts_as_it_is():
    """.env.example is the template a developer copies to .env: every value it sets must start."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    result = start(values)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # tokens.E001 only: nothing was signed (a 500 at /oauth/token).
        ("PORTAL_SIGNING_KEY_ENCRYPTION_KEY", "f" * 30 + "0123456789abcdef"),
        # tokens.E003 only: every decryption failed once the variable was set.
        ("PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY", "not-a-fernet-key"),
        # portal.E020 only: a network (natural behind a load-balancer pool) was skipped without a
        # word, so X-Forwarded-For was never believed and every client shared the proxy's limits.
        ("PORTAL_TRUSTED_PROXIES", "10.0.0.0/24"),
        ("PORTAL_TRUSTED_PROXIES", "10.0.0.10, proxy.internal"),
        # portal.E021 only: Prometheus got 403s and nothing said why.
        ("PORTAL_METRICS_ALLOWED_IPS", "prometheus.internal"),
        ("PORTAL_METRICS_ALLOWED_IPS", "10.0.0.300"),
        # tokens.E002 only: every token got aud="not a uri".
        ("PORTAL_DEFAULT_AUDIENCE", "not a uri"),
        ("PORTAL_DEFAULT_AUDIENCE", "https://user@portal.example.com/api"),
        # portal.E001 only: every credential failed (a repeated id).
        (
            "PORTAL_PEPPERS",
            "1:Zr8Q2mX7vL4pT9wK1nB6cH3jF5dS0gA8eY2uI4oP7q,1:Ab8Q2mX7vL4pT9wK1nB6cH3jF5dS0gA8eY2uI4oP7q",
        ),
        # No check at all: every key created without --environment was refused ("Choose live or test.").
        ("PORTAL_API_KEY_ENVIRONMENT", "prod"),
        # A typo in a switch read as false: the HTTPS redirect silently off (check --deploy says
        # security.W008, which operators behind a TLS proxy are told to expect).
        ("PORTAL_SECURE_SSL_REDIRECT", "ture"),
        ("PORTAL_HSTS_INCLUDE_SUBDOMAINS", "yes please"),
        ("PORTAL_USAGE_METERING", "2"),
        ("DEBUG", "maybe"),
    ],
)
def test_an_unusable_value_stops_start_up_naming_its_variable(variable, value):
    result = start({**BASE_ENV, variable: value})
    assert result.returncode != 0, f"{variable}={value!r} started the WSGI application"
    assert variable in last_line(result.stderr), result.stderr[-500:]


@pytest.mark.parametrize(
    ("variable", "value", "check"),
    [
        # Mail links would start with it: every e-mailed link broken.
        ("PORTAL_BASE_URL", "portal.example.com", "portal.E002"),
        # Every GitHub alert answered 503 until someone looked.
        ("PORTAL_SECRET_SCANNING_PUBLIC_KEYS", "not a key", "credentials.E101"),
    ],
)
def test_a_value_only_a_system_check_refuses_stops_the_wsgi_application_too(variable, value, check):
    """portal.wsgi runs the system checks `manage.py` runs before every command: gunicorn runs none,
    so these started and failed at request time."""
    result = start({**BASE_ENV, variable: value})
    assert result.returncode != 0, f"{variable}={value!r} started the WSGI application"
    assert check in last_line(result.stderr) and variable in result.stderr, result.stderr[-500:]
    assert start({**BASE_ENV, variable: value}, "import portal.asgi").returncode != 0


@pytest.mark.parametrize(
    "url",
    [
        "smtp-tls://portal:Ma1lPassw0rd@smtp.example.com:587",
        "smtp://portal:Ma1lPassw0rd@smtp.example.com:port",
        "",
    ],
)
def test_a_malformed_email_url_names_its_variable_and_not_its_password(url):
    """django-environ's own error ("Invalid email schema smtp-tls", or a ValueError about the port)
    did not name EMAIL_URL."""
    result = start({**BASE_ENV, "EMAIL_URL": url})
    assert result.returncode != 0
    # The message itself, not the traceback's source line that happens to quote the call.
    assert "EMAIL_URL" in last_line(result.stderr), result.stderr[-500:]
    assert "Ma1lPassw0rd" not in result.stderr


def test_switches_take_the_documented_spellings_and_blank_is_the_default():
    values = {
        **BASE_ENV,
        "PORTAL_SECURE_SSL_REDIRECT": "off",
        "PORTAL_HSTS_INCLUDE_SUBDOMAINS": " No ",
        "PORTAL_HSTS_PRELOAD": "YES",
        "PORTAL_PROXY_SSL_HEADER": "True",
        "PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN": "0",
        "PORTAL_USAGE_METERING": "",  # blank: the default (on)
        "PORTAL_CLIENT_SNAPSHOT": "",  # blank: the default (None: on with Redis)
        "PORTAL_API_KEY_ENVIRONMENT": "",  # blank: live
        "PORTAL_DEFAULT_AUDIENCE": "",  # blank: <issuer>/api
        "PORTAL_TRUSTED_PROXIES": "10.0.0.10, ::ffff:10.0.0.11",
        "PORTAL_METRICS_ALLOWED_IPS": "10.0.0.30, 10.0.1.0/24",
    }
    names = [
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SECURE_PROXY_SSL_HEADER",
        "PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN",
        "PORTAL_USAGE_METERING",
        "PORTAL_CLIENT_SNAPSHOT",
        "PORTAL_API_KEY_ENVIRONMENT",
        "PORTAL_DEFAULT_AUDIENCE",
        "PORTAL_TRUSTED_PROXIES",
        "PORTAL_METRICS_ALLOWED_IPS",
    ]
    code = "import portal.wsgi; from django.conf import settings as s; "
    code += f"print([getattr(s, n) for n in {names!r}])"
    result = start(values, code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert dict(zip(names, ast.literal_eval(result.stdout.strip().splitlines()[-1]), strict=True)) == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
        "PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN": False,
        "PORTAL_USAGE_METERING": True,
        "PORTAL_CLIENT_SNAPSHOT": None,
        "PORTAL_API_KEY_ENVIRONMENT": "live",
        "PORTAL_DEFAULT_AUDIENCE": "https://portal.example.com/api",
        "PORTAL_TRUSTED_PROXIES": ["10.0.0.10", "::ffff:10.0.0.11"],
        "PORTAL_METRICS_ALLOWED_IPS": ["10.0.0.30", "10.0.1.0/24"],
    }
