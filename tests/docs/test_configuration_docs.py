"""docs/configuration.md against portal/settings.py: every variable both ways, and the defaults."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
DOC = (ROOT / "docs" / "configuration.md").read_text()
SETTINGS_SOURCE = (ROOT / "portal" / "settings.py").read_text()

#: Variables a third-party library reads itself (not portal/settings.py).
READ_ELSEWHERE = {"PROMETHEUS_MULTIPROC_DIR"}


def _main_table() -> dict[str, tuple[str, str]]:
    table = DOC.split("## Test-only variables")[0]
    rows = {}
    for line in table.splitlines():
        match = re.match(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = (match.group(2).strip(), match.group(3))
    return rows


def test_every_variable_settings_reads_is_documented_and_back():
    read = set(re.findall(r'(?:env(?:\.\w+)?|_required_secret)\(\s*"([A-Z][A-Z0-9_]+)"', SETTINGS_SOURCE))
    documented_rows = set(_main_table())
    documented_anywhere = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", DOC.split("## Test-only variables")[0]))
    assert read - documented_anywhere == set(), "read by settings.py, not in docs/configuration.md"
    assert documented_rows - read - READ_ELSEWHERE == set(), "documented, never read by settings.py"


def _defaults_in_a_clean_process() -> dict:
    code = """
import json, django
django.setup()
from django.conf import settings as s
names = [n for n in dir(s) if n.isupper()]
out = {n: getattr(s, n) for n in names}
out["_CONN_MAX_AGE"] = s.DATABASES["default"].get("CONN_MAX_AGE")
print(json.dumps(out, default=str))
"""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


#: documented name -> setting it lands in, where not the same name.
SETTING_OF = {
    "PORTAL_DB_CONN_MAX_AGE": "_CONN_MAX_AGE",
    "PORTAL_MAX_REQUEST_BYTES": "DATA_UPLOAD_MAX_MEMORY_SIZE",
    "PORTAL_SESSION_COOKIE_AGE": "SESSION_COOKIE_AGE",
    "PORTAL_MFA_ISSUER": "MFA_TOTP_ISSUER",
    "PORTAL_LOG_LEVEL": "LOG_LEVEL",
    "PORTAL_LOG_FORMAT": "LOG_FORMAT",
}


def test_documented_numeric_and_boolean_defaults():
    actual = _defaults_in_a_clean_process()
    mismatches = []
    for name, (default, _meaning) in _main_table().items():
        setting = SETTING_OF.get(name, name)
        if name == "DEBUG" or setting not in actual:  # the clean process runs with DEBUG=1
            continue
        value = actual[setting]
        words = default.strip("`").split(" ")[0]
        if re.fullmatch(r"[0-9.]+", words):
            if float(words) != float(value):
                mismatches.append((name, default, value))
        elif words in ("true", "false", "off", "on"):
            if (words in ("true", "on")) != bool(value):
                mismatches.append((name, default, value))
        elif words in ("INFO", "plain", "live", "portal", "Identity") and not str(value).startswith(words):
            mismatches.append((name, default, value))
    assert mismatches == []


def test_env_example_keeps_the_documented_debug_defaults():
    """.env.example says 'Default: on with DEBUG' for the two loopback switches, then sets them to 0
    next to DEBUG=1, so a developer who copies it to .env (as it says) loses `make run`'s localhost
    webhooks and federation issuers."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z_]+)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    assert values["DEBUG"] == "1"
    for name in ("PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST", "PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST"):
        assert values.get(name, "") in ("", "1", "true"), f"{name}={values.get(name)} beside DEBUG=1"


def test_env_example_copied_to_env_keeps_make_run_on_sqlite_and_its_address():
    """README's quick start needs nothing but SQLite, and `make run HOST=… PORT=…` issues for that
    address: a `.env` copied from the example (as it says) must pin neither the database, Redis,
    nor the issuer and audience (the settings read `.env` under the environment)."""
    values = dict(re.findall(r"^([A-Z_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    assert values["DEBUG"] == "1"
    names = ("DATABASE_URL", "REDIS_URL", "PORTAL_ISSUER", "PORTAL_DEFAULT_AUDIENCE")
    assert {name: values[name] for name in names if values.get(name)} == {}


def test_env_example_states_the_signing_key_refresh_bound_as_the_settings_do():
    """A signing-key rotation reaches every server within twice the refresh interval
    (portal/settings.py, docs/configuration.md), not within it."""
    text = (ROOT / ".env.example").read_text()
    comment = text.split("PORTAL_SIGNING_KEY_REFRESH_SECONDS=")[0].split(
        "PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY="
    )[-1]
    assert "within twice this interval" in comment, comment
