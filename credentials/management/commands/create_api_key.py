"""`create_api_key --org SLUG --name NAME --owner EMAIL [--scopes "a b"] [--expires-in-days N]
[--allowed-ips CIDR[,CIDR…]] [--rate-limit N/S] [--json]`."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from credentials.api_keys.services import api_key_create
from credentials.cli import (
    add_identity_arguments,
    add_policy_arguments,
    json_written,
    organization_and_owner,
    runtime_policy,
)
from credentials.lifetimes import MAX_LIFETIME_DAYS, expiry_in_days
from portal.management.base import PortalCommand


class Command(PortalCommand):
    help = "Create an API key and print it once (it is stored only as a keyed hash)."

    def add_arguments(self, parser):
        add_identity_arguments(
            parser,
            name_help="What the key is for.",
            owner_help="Email of the member accountable for the key.",
            scopes_help='Space-separated catalogue scopes, e.g. "orders:read".',
        )
        parser.add_argument("--expires-in-days", type=int, default=None, help="Expire the key after N days.")
        parser.add_argument("--environment", choices=["live", "test"], default=None, help="Key environment.")
        add_policy_arguments(parser, json_help='Print one JSON object: {"id", "key", …}.')

    def handle(self, *args, **options):
        organization, owner = organization_and_owner(options)
        days = options["expires_in_days"]
        if days is not None and not 1 <= days <= MAX_LIFETIME_DAYS:
            raise CommandError(f"--expires-in-days must be between 1 and {MAX_LIFETIME_DAYS} (ten years).")
        allowed_ips, rate_limit = runtime_policy(options)
        try:
            api_key, plaintext = api_key_create(
                organization=organization,
                name=options["name"],
                owner=owner,
                scopes=options["scopes"].split(),
                actor=None,
                environment=options["environment"],
                expires_at=expiry_in_days(days) if days else None,
                via="cli",
                allowed_ips=allowed_ips,
                rate_limit=rate_limit,
            )
        except ValidationError as exc:
            messages = " ".join(exc.messages)
            if days is not None and getattr(exc, "error_dict", {}).get("expires_at"):
                messages = f"--expires-in-days {days}: {messages}"
            raise CommandError(messages) from exc
        result = {
            "id": api_key.key_id,
            "key": plaintext,
            "name": api_key.name,
            "organization": organization.slug,
            "owner": owner.email,
            "scopes": api_key.scopes,
            "environment": api_key.environment,
            "expires_at": api_key.expires_at.isoformat() if api_key.expires_at else None,
            "allowed_ips": api_key.allowed_ips,
            "rate_limit": api_key.rate_limit,
        }
        if json_written(self, options, result):
            return
        self.stdout.write(f"Created API key {api_key.key_id} ({api_key.name}) for {organization.slug}.")
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(plaintext)
