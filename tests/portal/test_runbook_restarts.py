"""docs/operations.md: a runbook step that changes /etc/identity-portal.env restarts the servers.

The rotation runbooks (pepper, steps 1, 2 and 4; signing-key encryption key, steps 2 and 4)
said "reload all". The documented unit reloads with `ExecReload=/bin/kill -HUP $MAINPID`, and
systemd reads `EnvironmentFile=` only when it starts a process: a HUP makes gunicorn fork new
workers from the same master, whose environment has not changed. An operator who followed the
encryption-key runbook re-encrypted every stored secret under a key no server had: /oauth/token
answered 500 while /healthz stayed 200. (The auditor's reproduction ran the runbook against
gunicorn under that unit's rules and took about 70 s; what it pins is the wording, checked here.)
"""

from __future__ import annotations

import re

import pytest

from tests.portal.operations_doc import OPERATIONS, flat, numbered_steps, section

#: How a step changes the environment: it sets a variable, or removes one.
CHANGES_ENVIRONMENT = re.compile(r"`PORTAL_[A-Z_]+=|Remove `PORTAL_[A-Z_]+`")
#: Both long-running processes that read the file: the app server and the webhook sender.
RESTART = "sudo systemctl restart identity-portal identity-portal-webhooks"


@pytest.mark.parametrize(
    ("title", "changing_steps"),
    [("Rotating the pepper", {1, 2, 4}), ("Rotating the signing-key encryption key", {2, 4})],
)
def test_every_step_that_changes_the_environment_restarts_the_servers(title, changing_steps):
    steps = numbered_steps(section(title))
    changing = {number: flat(step) for number, step in steps.items() if CHANGES_ENVIRONMENT.search(step)}
    assert set(changing) == changing_steps, f"{title}: the steps that change the environment moved"
    for number, step in changing.items():
        assert RESTART in step, f"{title}, step {number} does not restart the servers: {step[:300]}"
        assert not re.search(r"\breload all\b", step), f"{title}, step {number} still says 'reload all'"


def test_the_unit_and_the_upgrade_notes_say_a_reload_keeps_the_environment():
    unit = OPERATIONS.read_text().split("`/etc/systemd/system/identity-portal.service`:", 1)[1]
    unit = re.search(r"```ini\n(.*?)```", unit, re.S).group(1).splitlines()
    reload_at = next(i for i, line in enumerate(unit) if line.startswith("ExecReload="))
    assert "HUP" in unit[reload_at]
    comment = flat(" ".join(line.lstrip("# ") for line in unit[:reload_at] if line.startswith("#")))
    assert "EnvironmentFile=" in comment and "restart" in comment, "nothing by ExecReload says a HUP keeps it"

    upgrading = flat(section("Upgrading"))
    assert "keeps the environment" in upgrading and RESTART in upgrading
    # A code upgrade reaches the webhook sender (one long-running process) only by a restart.
    assert "sudo systemctl restart identity-portal-webhooks" in upgrading
