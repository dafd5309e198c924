"""docs/operations.md "Backups": the documented nightly dump holds no live session key.

The runbook left out `django_session`'s rows because session keys are "live credentials of
signed-in users". allauth's usersessions app (the *Sessions* page) keeps the same key in
`usersessions_usersession.session_key`, which the documented command still dumped: whoever read
a dump could sign in as anyone who was signed in when it was taken. This runs the command's
exclusions with the real pg_dump against the test database.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest
from allauth.usersessions.models import UserSession
from django.db import connection
from django.test import Client

from tests.factories import PASSWORD
from tests.portal.operations_doc import section

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def documented_exclusions() -> list[str]:
    """Return what the documented pg_dump leaves out (its --format and --file only say how and where)."""
    command = re.search(r"^pg_dump (.*?)\n\s*\"postgresql://", section("Backups"), re.S | re.M).group(1)
    return [arg for arg in shlex.split(command.replace("\\", " ")) if arg.startswith("--exclude")]


def pg_dump() -> str:
    found = shutil.which("pg_dump")
    if found is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("pg_dump is not installed")
        pytest.skip("pg_dump is not installed")
    return found


def test_the_nightly_dump_holds_no_session_key(require_postgres, owner):
    client = Client()
    response = client.post("/accounts/login/", {"login": owner.email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    session_key = next(cookie.value for name, cookie in client.cookies.items() if "sessionid" in name)
    assert UserSession.objects.filter(session_key=session_key).exists()  # the Sessions page's row

    db = connection.settings_dict
    conninfo = {"dbname": db["NAME"], "host": db["HOST"], "port": db["PORT"], "user": db["USER"]}
    env = {**os.environ, **({"PGPASSWORD": db["PASSWORD"]} if db["PASSWORD"] else {})}
    dump = subprocess.run(
        [
            pg_dump(),
            "--format=plain",
            *documented_exclusions(),
            " ".join(f"{k}={v}" for k, v in conninfo.items() if v),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    ).stdout

    assert "CREATE TABLE public.usersessions_usersession" in dump  # the table is kept, its rows are not
    assert session_key not in dump, "the dump holds a live session key"
