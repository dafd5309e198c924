"""Periodic commands: bad arguments end in a CommandError; the runbook schedules every periodic job."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from credentials.management.commands import deliver_webhooks

pytestmark = pytest.mark.django_db

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_deliver_webhooks_refuses_an_absurd_batch_size_with_a_command_error():
    with pytest.raises(CommandError):
        call_command("deliver_webhooks", "--once", "--batch-size", str(10**20))


@pytest.mark.parametrize("interval", ["nan", "inf"])
def test_deliver_webhooks_loop_refuses_a_non_finite_interval(interval, monkeypatch):
    """`--interval nan` makes the loop's sleep condition always false (a busy loop hammering the
    database); `inf` makes it never pass again. Both should be refused like a negative one."""

    class Looped(Exception):
        pass

    def drain(**_kwargs):
        raise Looped("the sender started its loop with --interval " + interval)

    monkeypatch.setattr(deliver_webhooks, "deliveries_drain", drain)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with pytest.raises(CommandError):
            call_command("deliver_webhooks", "--loop", "--interval", interval)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _cron_lines() -> list[str]:
    text = OPERATIONS.read_text()
    return [line for block in re.findall(r"```cron\n(.*?)```", text, re.S) for line in block.splitlines()]


@pytest.mark.parametrize(
    "command",
    [
        "send_credential_notices",  # expiry/review notices and the orphan/overdue suspensions
        "purge_revoked_tokens",  # its own help: "run daily from cron"
    ],
)
def test_the_operations_runbook_schedules_every_periodic_command(command):
    lines = _cron_lines()
    assert any(f"portal-manage {command}" in line for line in lines), (
        f"docs/operations.md has no cron line for `{command}`; it schedules only: "
        + "; ".join(
            sorted(
                {line.split("portal-manage ")[1].split(" >")[0] for line in lines if "portal-manage" in line}
            )
        )
    )
