"""`manage.py rotate_signing_key`: sign new tokens with a fresh key; keep the old one published."""

from __future__ import annotations

import time

from django.conf import settings

from portal.management.base import PortalCommand
from tokens.models import SigningKey
from tokens.signing.services import signing_key_rotate, signing_key_unpublish


class Command(PortalCommand):
    help = (
        "Create a new JWT signing key and sign with it at once. The previous key stays in the "
        "JWKS until every token it signed has expired (24 h plus leeway), unless "
        "--unpublish-previous withdraws it now (a leaked key: its tokens stop validating)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--algorithm", choices=SigningKey.Algorithm.values, default=SigningKey.Algorithm.RS256
        )
        parser.add_argument(
            "--unpublish-previous",
            action="store_true",
            help="Withdraw the previous key from the JWKS now; tokens it signed stop validating.",
        )

    def handle(self, *args, **options):
        key, previous = signing_key_rotate(actor=None, algorithm=options["algorithm"])
        self.stdout.write(f"Active signing key: {key.kid} ({key.algorithm}).")
        if previous is None:
            return
        if options["unpublish_previous"]:
            # Other app servers switch to the new key within twice their refresh interval (the
            # shared kid hint, tokens.signing.keys); until then they still sign with the old one.
            # Withdrawn sooner, their tokens would be issued (200) yet verify nowhere.
            wait = 2 * settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS
            if wait > 0:
                self.stdout.write(f"Waiting {wait} s for every app server to sign with the new key…")
                self.stdout.flush()
                time.sleep(wait)
            signing_key_unpublish(key=previous, actor=None)
            self.stdout.write(
                f"Withdrew key {previous.kid} from the JWKS: tokens it signed stop validating "
                "(on every app server within a minute)."
            )
            return
        self.stdout.write(
            f"Retired key {previous.kid} stays published until {previous.publish_until:%Y-%m-%d %H:%M} UTC."
        )
