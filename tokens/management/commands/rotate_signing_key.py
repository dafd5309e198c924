"""`manage.py rotate_signing_key`: stage the next JWT signing key, or sign with it and keep the old one
published; withdraw a leaked one."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from credentials.cli import service_refusals
from portal.management.base import PortalCommand
from tokens.models import SigningKey
from tokens.signing.services import (
    signing_key_rotate,
    signing_key_stage,
    signing_key_staged,
    signing_key_unpublish,
    signing_key_withdrawal_unfinished,
)


class Command(PortalCommand):
    help = (
        "Sign new tokens with the next JWT signing key: the staged one (--stage published it "
        "earlier, so verifiers that cache the JWKS already hold it), else a new key made now. The "
        "previous key stays in the JWKS until every token it signed has expired (24 h plus "
        "leeway), unless --unpublish-previous withdraws it now (a leaked key: its tokens stop "
        "validating). --withdraw-staged takes a staged key out of the JWKS again; --withdraw KID "
        "withdraws a retired (or the staged) key."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--algorithm",
            choices=SigningKey.Algorithm.values,
            help="RS256 (the default) or ES256; a rotation to a staged key must not ask for another one.",
        )
        what = parser.add_mutually_exclusive_group()
        what.add_argument(
            "--stage",
            action="store_true",
            help="Publish a new key in the JWKS without signing with it; a later rotation signs with it.",
        )
        what.add_argument(
            "--unpublish-previous",
            action="store_true",
            help="Withdraw the previous key from the JWKS now; tokens it signed stop validating.",
        )
        what.add_argument(
            "--withdraw-staged",
            action="store_true",
            help="Take the staged key out of the JWKS (it never signed); nothing else changes.",
        )
        what.add_argument(
            "--withdraw",
            metavar="KID",
            help="Withdraw the retired (or staged) key KID from the JWKS now; tokens it signed stop "
            "validating. Nothing is rotated.",
        )

    def handle(self, *args, **options):
        if options["stage"]:
            self._stage(options["algorithm"] or SigningKey.Algorithm.RS256)
        elif options["withdraw_staged"]:
            self._withdraw_staged()
        elif options["withdraw"]:
            self._withdraw(options["withdraw"])
        else:
            self._rotate(options["algorithm"], unpublish_previous=options["unpublish_previous"])

    def _stage(self, algorithm: str) -> None:
        with service_refusals():
            key = signing_key_stage(actor=None, algorithm=algorithm)
        max_age = settings.PORTAL_JWKS_MAX_AGE_SECONDS
        self.stdout.write(f"Staged signing key: {key.kid} ({key.algorithm}): in the JWKS, not signing yet.")
        self.stdout.write(
            f"Leave it published for at least PORTAL_JWKS_MAX_AGE_SECONDS ({max_age} s) before "
            "`rotate_signing_key` signs with it."
        )

    def _withdraw_staged(self) -> None:
        staged = signing_key_staged()
        if staged is None:
            raise CommandError("No signing key is staged.")
        with service_refusals():
            signing_key_unpublish(key=staged, actor=None)
        self.stdout.write(f"Withdrew staged key {staged.kid} from the JWKS; it never signed.")

    def _withdraw(self, kid: str) -> None:
        key = SigningKey.objects.filter(kid=kid).first()
        if key is None:
            raise CommandError(f"No signing key has the kid {kid!r}.")
        if key.status == SigningKey.Status.ACTIVE:
            raise CommandError(
                f"Key {kid} is the active key: `rotate_signing_key --unpublish-previous` rotates and "
                "withdraws it."
            )
        if not key.is_published:
            with service_refusals():
                signing_key_unpublish(key=key, actor=None)  # records it, if nothing did
            self.stdout.write(
                f"Key {kid} left the JWKS at {key.publish_until:%Y-%m-%d %H:%M:%S} UTC already."
            )
            return
        due = None
        if key.status == SigningKey.Status.RETIRED and key.retired_at is not None:
            # Retired moments ago: other app servers may still sign with it (see `_rotate`).
            due = key.retired_at + timedelta(seconds=2 * settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS)
        self._withdraw_when_due(key, due)

    def _rotate(self, algorithm: str | None, *, unpublish_previous: bool) -> None:
        if unpublish_previous:
            unfinished = signing_key_withdrawal_unfinished()
            if unfinished is not None:
                self._finish_withdrawal(unfinished)
                return
        staged = signing_key_staged()
        if staged is not None and algorithm not in (None, staged.algorithm):
            raise CommandError(
                f"Key {staged.kid} is staged as the next signing key and is {staged.algorithm}, not "
                f"{algorithm}. Run `rotate_signing_key --withdraw-staged` first to rotate to a new "
                f"{algorithm} key, or rotate without --algorithm to sign with the staged one."
            )
        # Other app servers switch to the new key within twice their refresh interval (the shared
        # kid hint, tokens.signing.keys) and sign with the old one until then: withdrawn sooner,
        # their tokens would be issued (200) yet verify nowhere. The rotation's transaction
        # schedules the withdrawal for then, so the key leaves the JWKS even if this command is
        # stopped while it waits; the wait counts from the rotation (a few milliseconds before
        # its commit) and the command then records it (`_withdraw_when_due`).
        wait = timedelta(seconds=2 * settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS)
        with service_refusals():  # the service refuses the same when a staging races this
            key, previous = signing_key_rotate(
                actor=None, algorithm=algorithm, withdraw_previous_after=wait if unpublish_previous else None
            )
        self.stdout.write(f"Active signing key: {key.kid} ({key.algorithm}).")
        if staged is not None and key.pk == staged.pk:
            self._report_publication(key)
        if previous is None:
            return
        if unpublish_previous:
            self._withdraw_when_due(previous, previous.publish_until)
            return
        self.stdout.write(
            f"Retired key {previous.kid} stays published until {previous.publish_until:%Y-%m-%d %H:%M} UTC."
        )

    def _finish_withdrawal(self, key: SigningKey) -> None:
        """Finish an emergency rotation stopped while it waited, instead of rotating once more."""
        active = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
        self.stdout.write(
            f"The `--unpublish-previous` rotation of {key.retired_at:%Y-%m-%d %H:%M:%S} UTC stopped before "
            f"it finished withdrawing key {key.kid}: finishing it. Nothing is rotated: key "
            f"{active.kid if active else '(none)'} keeps signing."
        )
        self._withdraw_when_due(key, key.publish_until)
        self.stdout.write(
            "Run `rotate_signing_key --unpublish-previous` again if the key that signs now must go too."
        )

    def _withdraw_when_due(self, key: SigningKey, due: datetime | None) -> None:
        """Wait until `due` (when every app server signs with another key), then withdraw `key`."""
        remaining = (due - timezone.now()).total_seconds() if due is not None else 0
        if remaining > 0:
            scheduled = due == key.publish_until  # the rotation's transaction recorded it
            self.stdout.write(
                f"Waiting {math.ceil(remaining)} s for every app server to sign with the new key"
                + (
                    f" (key {key.kid} leaves the JWKS then, even if this command is stopped)…"
                    if scheduled
                    else "…"
                )
            )
            self.stdout.flush()
            time.sleep(remaining)
        with service_refusals():
            signing_key_unpublish(key=key, actor=None)
        self.stdout.write(
            f"Withdrew key {key.kid} from the JWKS: tokens it signed stop validating "
            "(on every app server within a minute)."
        )

    def _report_publication(self, key: SigningKey) -> None:
        """Say how long verifiers could fetch the promoted key before it signed."""
        published_for = int((timezone.now() - key.created_at).total_seconds())
        max_age = settings.PORTAL_JWKS_MAX_AGE_SECONDS
        self.stdout.write(f"It was staged {published_for} s ago (published in the JWKS since).")
        if published_for < max_age:
            self.stderr.write(
                f"WARNING: that is less than PORTAL_JWKS_MAX_AGE_SECONDS ({max_age} s): verifiers that "
                "fetched the JWKS before the staging may refuse the new tokens until they fetch it again."
            )
