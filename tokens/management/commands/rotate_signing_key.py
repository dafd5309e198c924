"""`manage.py rotate_signing_key`: sign new tokens with a fresh key; keep the old one published."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from tokens.models import SigningKey
from tokens.services import signing_key_rotate


class Command(BaseCommand):
    help = (
        "Create a new JWT signing key and sign with it at once. The previous key stays in the "
        "JWKS until every token it signed has expired (24 h plus leeway)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--algorithm", choices=SigningKey.Algorithm.values, default=SigningKey.Algorithm.RS256
        )

    def handle(self, *args, **options):
        key, previous = signing_key_rotate(actor=None, algorithm=options["algorithm"])
        self.stdout.write(f"Active signing key: {key.kid} ({key.algorithm}).")
        if previous is not None:
            self.stdout.write(
                f"Retired key {previous.kid} stays published until"
                f" {previous.publish_until:%Y-%m-%d %H:%M} UTC."
            )
