"""`manage.py reencrypt_webhook_secrets`: the former name of `reencrypt_secrets` (which it runs)."""

from __future__ import annotations

from portal.management.commands import reencrypt_secrets


class Command(reencrypt_secrets.Command):
    help = (
        "Kept for existing runbooks: runs `reencrypt_secrets`, which re-encrypts every encrypted "
        "secret (signing keys, webhook secrets, MFA secrets). " + reencrypt_secrets.Command.help
    )
