"""`rotate_signing_key --unpublish-previous` stopped during its wait (Ctrl-C, a dropped SSH session).

What was wrong: the rotation committed, the command slept 2 × PORTAL_SIGNING_KEY_REFRESH_SECONDS
and only then withdrew the leaked key. Stopped during the sleep, the leaked key stayed in the
JWKS for 24 h; run again (as one re-runs any interrupted command), it rotated once more and
withdrew the key that had replaced the leaked one, leaving the leaked one published. Now the
rotation itself schedules the withdrawal, and a re-run finishes the interrupted one.
"""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from portal.models import AuditEvent
from tokens.management.commands import rotate_signing_key as command
from tokens.models import SigningKey
from tokens.signing.services import signing_key_ensure, signing_key_rotate

pytestmark = pytest.mark.django_db

REAL_SLEEP = time.sleep


def published_kids(client) -> list[str]:
    return [k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]]


def withdrawals_of(key: SigningKey) -> int:
    return AuditEvent.objects.filter(action="tokens.signing_key.unpublished", extra__kid=key.kid).count()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("rotate_signing_key", *args, stdout=out)
    return out.getvalue()


def interrupted_emergency_rotation(monkeypatch, capture) -> None:
    """Run `--unpublish-previous` and stop it during its wait for the other app servers."""

    def interrupted(_seconds):
        raise KeyboardInterrupt  # the operator's session ends during the wait

    monkeypatch.setattr(command.time, "sleep", interrupted)
    with pytest.raises(KeyboardInterrupt), capture(execute=True):
        run("--unpublish-previous")
    monkeypatch.setattr(command.time, "sleep", lambda _seconds: None)


def test_an_interrupted_emergency_rotation_run_again_withdraws_the_leaked_key(
    client, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS = 5  # the command waits 10 s for the other servers
    leaked = signing_key_ensure()
    interrupted_emergency_rotation(monkeypatch, django_capture_on_commit_callbacks)
    replacement = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)

    # The operator runs the emergency command again, as one re-runs any interrupted command.
    with django_capture_on_commit_callbacks(execute=True):
        out = run("--unpublish-previous")

    kids = published_kids(client)
    assert leaked.kid not in kids, (
        "the leaked key is still in the JWKS (for 24 h): the re-run withdrew "
        + ", ".join(k.kid for k in SigningKey.objects.exclude(kid__in=kids))
    )
    # It finished the interrupted rotation rather than rotating again and withdrawing the good key.
    assert kids == [replacement.kid]
    assert SigningKey.objects.get(status=SigningKey.Status.ACTIVE) == replacement
    assert SigningKey.objects.count() == 2
    assert withdrawals_of(leaked) == 1 and withdrawals_of(replacement) == 0
    assert f"Withdrew key {leaked.kid}" in out and "Nothing is rotated" in out


def test_the_leaked_key_leaves_the_jwks_by_itself_if_nobody_runs_the_command_again(
    client, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS = 1.5  # the command waits 3 s
    leaked = signing_key_ensure()
    interrupted_emergency_rotation(monkeypatch, django_capture_on_commit_callbacks)
    assert leaked.kid in published_kids(client)  # other app servers may still sign with it
    leaked.refresh_from_db()
    assert leaked.publish_until - leaked.retired_at == timedelta(seconds=3)

    REAL_SLEEP(max(0.0, (leaked.publish_until - timezone.now()).total_seconds()) + 0.1)
    assert leaked.kid not in published_kids(client)


def test_a_later_emergency_rotation_rotates_again(settings, django_capture_on_commit_callbacks):
    """Once the first one has finished, or a day after an interrupted one, the command rotates."""
    settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS = 0  # one process: nobody else to wait for
    first = signing_key_ensure()
    with django_capture_on_commit_callbacks(execute=True):
        run("--unpublish-previous")
    second = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)

    with django_capture_on_commit_callbacks(execute=True):
        out = run("--unpublish-previous")
    third = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)
    assert third not in (first, second) and f"Withdrew key {second.kid}" in out
    assert withdrawals_of(first) == 1 and withdrawals_of(second) == 1


def test_an_interruption_a_day_old_does_not_stand_in_for_a_new_emergency_rotation(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS = 5
    signing_key_ensure()
    interrupted_emergency_rotation(monkeypatch, django_capture_on_commit_callbacks)
    a_day = timedelta(days=1, minutes=10)
    for key in SigningKey.objects.filter(status=SigningKey.Status.RETIRED):
        SigningKey.objects.filter(pk=key.pk).update(
            retired_at=key.retired_at - a_day, publish_until=key.publish_until - a_day
        )
    leaked_again = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)

    with django_capture_on_commit_callbacks(execute=True):
        out = run("--unpublish-previous")
    assert SigningKey.objects.get(status=SigningKey.Status.ACTIVE) != leaked_again
    assert f"Withdrew key {leaked_again.kid}" in out and withdrawals_of(leaked_again) == 1


def test_withdraw_takes_one_retired_key_out_of_the_jwks_by_kid(
    client, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS = 0
    older = signing_key_ensure()
    signing_key_rotate(actor=None)
    active = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)
    assert older.kid in published_kids(client)

    with django_capture_on_commit_callbacks(execute=True):
        out = run("--withdraw", older.kid)
    assert f"Withdrew key {older.kid}" in out
    assert published_kids(client) == [active.kid]
    assert withdrawals_of(older) == 1

    # Again: harmless, no second audit event.
    with django_capture_on_commit_callbacks(execute=True):
        again = run("--withdraw", older.kid)
    assert "left the JWKS" in again and withdrawals_of(older) == 1
    assert SigningKey.objects.get(status=SigningKey.Status.ACTIVE) == active  # nothing rotated

    with pytest.raises(CommandError, match="active key"):
        run("--withdraw", active.kid)
    with pytest.raises(CommandError, match="No signing key"):
        run("--withdraw", "no-such-kid")
