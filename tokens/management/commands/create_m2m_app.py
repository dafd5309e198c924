"""`manage.py create_m2m_app`: create an M2M application; print its secret once, or register its key."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from credentials import policy
from portal.models import Organization, User
from tokens.clients.services import m2m_app_create
from tokens.management import read_option_file


class Command(BaseCommand):
    help = "Create an M2M application (client credentials) and print its client id and secret once."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organisation slug.")
        parser.add_argument("--name", required=True, help="Application name.")
        parser.add_argument("--owner", required=True, help="Email of the owning member.")
        parser.add_argument(
            "--scopes", default="", help='Space-separated scopes, e.g. "orders:read orders:write".'
        )
        parser.add_argument(
            "--audiences",
            default="",
            help="Space-separated extra audiences (RFC 8707) from the resource-server catalogue.",
        )
        parser.add_argument("--token-lifetime", type=int, default=900, help="Seconds, 300 to 86400.")
        parser.add_argument(
            "--public-key-file",
            metavar="PATH",
            help="Use private_key_jwt instead of a secret: the public key (PEM or JWK) to register.",
        )
        parser.add_argument(
            "--allowed-ips",
            default="",
            metavar="CIDR[,CIDR…]",
            help="Only accept it from these IPv4/IPv6 networks (at most 100); default: any address.",
        )
        parser.add_argument(
            "--rate-limit", default="", metavar="N/S", help="At most N requests per S seconds, e.g. 100/60."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organisation with slug {options['org']!r}.")
        owner = User.objects.filter(email__iexact=options["owner"]).first()
        if owner is None:
            raise CommandError(f"No user with email {options['owner']!r}.")
        try:
            allowed_ips = policy.clean_allowed_ips(options["allowed_ips"])
            rate_limit = policy.parse_rate_limit(options["rate_limit"]) if options["rate_limit"] else None
        except ValidationError as exc:
            flag = "--allowed-ips" if "allowed_ips" in exc.message_dict else "--rate-limit"
            raise CommandError(f"{flag}: {' '.join(exc.messages)}") from None
        public_key = ""
        if options["public_key_file"]:
            public_key = read_option_file(options["public_key_file"])
        try:
            application, secret = m2m_app_create(
                organization=organization,
                name=options["name"],
                owner=owner,
                actor=None,
                scopes=options["scopes"].split(),
                audiences=options["audiences"].split(),
                token_lifetime=options["token_lifetime"],
                auth_method="private_key_jwt" if options["public_key_file"] else "client_secret_basic",
                public_key=public_key,
                allowed_ips=allowed_ips,
                rate_limit=rate_limit,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        result = {
            "id": application.pk,
            "client_id": application.client_id,
            "client_secret": secret,
            "organization": organization.slug,
            "scopes": sorted(application.allowed_scopes.values_list("name", flat=True)),
            "token_lifetime": application.token_lifetime,
            "token_endpoint_auth_method": application.token_endpoint_auth_method,
            "allowed_ips": application.allowed_ips,
            "rate_limit": application.rate_limit,
        }
        if secret is None:
            # A private_key_jwt application has no secret at all.
            del result["client_secret"]
            key = application.public_keys.get()
            result.update(public_key_kid=key.kid, public_key_alg=key.algorithm)
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"Created M2M application {application.name} (id {application.pk}).")
        self.stdout.write(f"client_id:     {application.client_id}")
        if secret is None:
            self.stdout.write(f"public key:    {result['public_key_kid']} ({result['public_key_alg']})")
            self.stdout.write("It authenticates with private_key_jwt: no secret exists.")
            return
        self.stdout.write(f"client_secret: {secret}")
        self.stdout.write("The secret is shown only now; store it safely.")
