"""Every URL, command, flag and make target README.md and docs/*.md name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

ROOT = Path(settings.BASE_DIR)

#: (path as documented, where) with placeholders filled in.
DOCUMENTED_PATHS = [
    ("/orgs/acme/", "README.md:53"),
    ("/orgs/acme/audit/export.csv", "README.md:53"),
    ("/orgs/acme/api-keys/", "README.md:54"),
    ("/orgs/acme/apps/", "README.md:55"),
    ("/orgs/acme/inventory/", "README.md:56"),
    ("/orgs/acme/inventory/export.csv", "docs/governance.md:304"),
    ("/api/v1/orgs/acme/inventory/", "README.md:56"),
    ("/orgs/acme/approvals/", "README.md:57"),
    ("/orgs/acme/policy/", "README.md:57"),
    ("/orgs/acme/webhooks/", "README.md:58"),
    ("/api/v1/orgs/acme/webhooks/", "README.md:58"),
    ("/api/v1/orgs/acme/webhooks/3/", "docs/webhooks.md:47"),
    ("/api/v1/orgs/acme/webhooks/3/rotate-secret/", "docs/webhooks.md:50"),
    ("/api/v1/orgs/acme/webhooks/3/ping/", "docs/webhooks.md:51"),
    ("/api/v1/orgs/acme/webhooks/3/deliveries/", "docs/webhooks.md:52"),
    ("/api/v1/orgs/acme/webhooks/3/deliveries/9/retry/", "docs/webhooks.md:53"),
    ("/oauth/token", "README.md:59"),
    ("/oauth/introspect", "README.md:60"),
    ("/oauth/revoke", "README.md:60"),
    ("/.well-known/jwks.json", "README.md:61"),
    ("/.well-known/oauth-authorization-server", "README.md:61"),
    ("/api/v1/orgs/acme/requests/", "README.md:62"),
    ("/api/v1/orgs/acme/requests/42/", "docs/governance.md:208"),
    ("/api/v1/orgs/acme/requests/42/approve/", "docs/governance.md:209"),
    ("/api/v1/orgs/acme/requests/42/deny/", "docs/governance.md:209"),
    ("/api/v1/orgs/acme/requests/42/cancel/", "docs/governance.md:210"),
    ("/api/v1/orgs/acme/api-keys/", "README.md:63"),
    ("/api/v1/orgs/acme/api-keys/3kQ0Zr8vXb1L/", "docs/api-keys.md:274"),
    ("/api/v1/orgs/acme/api-keys/3kQ0Zr8vXb1L/rotate/", "docs/api-keys.md:277"),
    ("/api/v1/orgs/acme/api-keys/3kQ0Zr8vXb1L/revoke/", "docs/api-keys.md:279"),
    ("/api/v1/orgs/acme/api-keys/3kQ0Zr8vXb1L/move-to-m2m-app/", "docs/api-keys.md:303"),
    ("/orgs/acme/api-keys/3kQ0Zr8vXb1L/cutover/", "docs/api-keys.md:327"),
    ("/orgs/acme/api-keys/3kQ0Zr8vXb1L/cutover/revoke/", "docs/api-keys.md:329"),
    ("/orgs/acme/api-keys/3kQ0Zr8vXb1L/usage.csv", "docs/usage.md:156"),
    ("/orgs/acme/apps/7/usage.csv", "docs/usage.md:156"),
    ("/api/v1/orgs/acme/usage/", "README.md:64"),
    ("/orgs/acme/usage/export.csv", "README.md:64"),
    ("/api/v1/orgs/acme/m2m-apps/", "README.md:65"),
    ("/api/v1/orgs/acme/m2m-apps/7/", "docs/m2m.md:773"),
    ("/api/v1/orgs/acme/m2m-apps/7/rotate-secret/", "docs/m2m.md:774"),
    ("/api/v1/orgs/acme/m2m-apps/7/secrets/12/revoke/", "docs/m2m.md:775"),
    ("/api/v1/orgs/acme/m2m-apps/7/revoke/", "docs/m2m.md:776"),
    ("/api/v1/orgs/acme/m2m-apps/7/public-keys/", "docs/m2m.md:777"),
    ("/api/v1/orgs/acme/m2m-apps/7/public-keys/3/revoke/", "docs/m2m.md:778"),
    ("/api/v1/keys/verify", "README.md:66"),
    ("/api/v1/secret-scanning/reports", "README.md:67"),
    ("/accounts/login/", "README.md:68"),
    ("/accounts/password/reset/", "README.md:68 (password reset under /accounts/)"),
    ("/accounts/password/change/", "README.md:68 (password change under /accounts/)"),
    ("/accounts/2fa/", "docs/account-security.md:26"),
    ("/accounts/email/", "docs/account-security.md:47"),
    ("/accounts/sessions/", "docs/account-security.md:124"),
    ("/api/v1/whoami", "README.md:69"),
    ("/api/v1/orgs/acme/policy/api-keys/", "README.md:70"),
    ("/api/v1/orgs/acme/policy/runtime/", "docs/governance.md:136"),
    ("/api/schema/", "README.md:71"),
    ("/api/docs/", "README.md:71"),
    ("/healthz", "README.md:72"),
    ("/metrics", "docs/configuration.md:67"),
    ("/admin/", "README.md:73"),
    ("/admin/tokens/resourceserver/", "docs/m2m.md:94"),
    ("/admin/tokens/m2mapplication/", "docs/m2m.md:145"),
    ("/admin/tokens/signingkey/", "docs/m2m.md:380"),
    ("/orgs/acme/credentials/new/", "README.md:86"),
    ("/orgs/acme/security/", "docs/account-security.md:28"),
    ("/orgs/acme/api-keys/3kQ0Zr8vXb1L/restore/", "docs/governance.md:313"),
    ("/orgs/acme/apps/7/restore/", "docs/governance.md:313"),
    ("/orgs/acme/apps/federated/7/restore/", "docs/governance.md:314"),
]


@pytest.mark.parametrize("path,where", DOCUMENTED_PATHS, ids=[p for p, _ in DOCUMENTED_PATHS])
def test_documented_path_resolves(path, where):
    try:
        resolve(path)
    except Resolver404:
        pytest.fail(f"{where}: {path} does not resolve")


def _options() -> dict[str, set[str]]:
    found = {}
    for name, app in get_commands().items():
        if app in ("portal", "credentials", "tokens"):
            parser = load_command_class(app, name).create_parser("manage.py", name)
            found[name] = {s for action in parser._actions for s in action.option_strings}
    return found


def test_every_documented_command_and_flag_exists():
    options = _options()
    problems = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = doc.read_text().split("\n")
        for number, line in enumerate(lines, 1):
            full, following = line, number
            while full.rstrip().endswith("\\") and following < len(lines):
                full = full.rstrip()[:-1] + " " + lines[following]
                following += 1
            for match in re.finditer(r"(?<!peers/)manage\.py\s+([a-z0-9_]+)([^`|\n]*)", full):
                name, rest = match.group(1), match.group(2).split("#")[0]
                if name not in options:
                    if name not in get_commands():
                        problems.append(f"{doc.name}:{number}: no command {name}")
                    continue
                for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest):
                    if flag not in options[name]:
                        problems.append(f"{doc.name}:{number}: {name} has no {flag}")
    assert problems == []


def test_every_documented_make_target_exists():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    documented = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        documented |= set(re.findall(r"`make ([a-z][a-z-]*)", doc.read_text()))
    assert documented - targets == set()
