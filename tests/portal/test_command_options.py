"""Option text no form would accept (a NUL character; bytes that are not UTF-8, which a shell
passes through as lone surrogates) is a one-line CommandError and exit 1 from every command
(`portal.management.base.PortalCommand`), before it reaches the database or a file path."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.factories import make_api_key, make_m2m_app

ROOT = Path(__file__).resolve().parents[2]
BAD = b"bad\xffname"  # not UTF-8: argv holds 'bad\udcffname'


@pytest.mark.parametrize(
    "args",
    [
        ["create_api_key", "--org", "acme", "--name", BAD, "--owner", "dev@acme.example", "--json"],
        ["set_api_key_policy", "--org", BAD],
        ["move_api_key_to_m2m_app", "--key-id", BAD],
    ],
    ids=["create_api_key", "set_api_key_policy", "move_api_key_to_m2m_app"],
)
def test_undecodable_argv_is_a_one_line_error_not_a_traceback(tmp_path, args):
    # The option is refused before the command runs: no database is needed (none exists here).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'none.sqlite3'}")
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    stderr = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr[-600:]
    assert done.returncode == 1
    assert stderr.startswith("CommandError:") and stderr.count("\n") <= 1, stderr[:400]


NUL = "a\x00b"


def _run(*args):
    call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case",
    [
        ("create_api_key", "--org", NUL, "--name", "x", "--owner", "OWNER"),
        ("create_api_key", "--org", "acme", "--name", NUL, "--owner", "OWNER"),
        ("create_api_key", "--org", "acme", "--name", "x", "--owner", NUL),
        ("create_m2m_app", "--org", "acme", "--name", NUL, "--owner", "OWNER"),
        ("create_m2m_app", "--org", "acme", "--name", "x", "--owner", "OWNER", "--public-key-file", NUL),
        ("set_api_key_policy", "--org", NUL),
        ("api_key_cutover", "--key-id", NUL),
        ("move_api_key_to_m2m_app", "--key-id", "KEY", "--name", NUL),
        ("rotate_client_secret", "--client-id", NUL),
        (
            "add_federated_identity",
            "--client-id",
            "APP",
            "--issuer",
            "https://token.actions.githubusercontent.com",
            "--subject",
            "x",
            "--jwks-file",
            NUL,
        ),
        (
            "add_federated_identity",
            "--client-id",
            "APP",
            "--issuer",
            "https://token.actions.githubusercontent.com",
            "--subject",
            "x",
            "--name",
            NUL,
        ),
    ],
    ids=lambda c: "-".join(c[:1] + tuple(a for a in c if a.startswith("--") and c[c.index(a) + 1] == NUL)),
)
def test_a_nul_byte_in_an_option_is_a_command_error(case, organization, owner, scopes):
    key, _ = make_api_key(organization, owner)
    app, _ = make_m2m_app(organization, owner)
    args = [{"OWNER": owner.email, "KEY": key.key_id, "APP": app.client_id}.get(a, a) for a in case]
    with pytest.raises(CommandError):
        _run(*args)
