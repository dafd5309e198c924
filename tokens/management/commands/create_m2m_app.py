"""`manage.py create_m2m_app`: create an M2M application; print its secret once, or register its key."""

from __future__ import annotations

from django.core.management.base import CommandError

from credentials.cli import (
    add_identity_arguments,
    add_policy_arguments,
    json_written,
    organization_and_owner,
    read_text_file,
    runtime_policy,
    service_refusals,
)
from portal.management.base import PortalCommand
from tokens.clients.quota import parse_token_quota, token_quota_of
from tokens.clients.services import m2m_app_create
from tokens.models import M2MApplication


class Command(PortalCommand):
    help = "Create an M2M application (client credentials) and print its client id and secret once."

    def add_arguments(self, parser):
        add_identity_arguments(
            parser,
            name_help="Application name.",
            owner_help="Email of the owning member.",
            scopes_help='Space-separated scopes, e.g. "orders:read orders:write".',
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
        parser.add_argument("--tokens-per-hour", default="", metavar="N", help="Token quota per UTC hour.")
        parser.add_argument("--tokens-per-day", default="", metavar="N", help="Token quota per UTC day.")
        parser.add_argument(
            "--token-quota-mode",
            default="enforce",
            choices=M2MApplication.QuotaMode.values,
            help="Past the quota: refuse with 429 slow_down (enforce, default) or issue and log (log_only).",
        )
        add_policy_arguments(parser, json_help="Print one JSON object.")

    def handle(self, *args, **options):
        organization, owner = organization_and_owner(options)
        allowed_ips, rate_limit = runtime_policy(options)
        with service_refusals():
            token_quota = parse_token_quota(
                options["tokens_per_hour"], options["tokens_per_day"], options["token_quota_mode"]
            )
        public_key = read_text_file(options["public_key_file"]) if options["public_key_file"] else ""
        if options["public_key_file"] and not public_key.strip():
            raise CommandError(f"{options['public_key_file']} holds no public key.")
        with service_refusals():
            application, secret = m2m_app_create(
                organization=organization,
                name=options["name"],
                owner=owner,
                actor=None,
                via="cli",
                scopes=options["scopes"].split(),
                audiences=options["audiences"].split(),
                token_lifetime=options["token_lifetime"],
                auth_method="private_key_jwt" if options["public_key_file"] else "client_secret_basic",
                public_key=public_key,
                allowed_ips=allowed_ips,
                rate_limit=rate_limit,
                token_quota=token_quota,
            )
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
            "token_quota": token_quota_of(application),
        }
        if secret is None:
            # A private_key_jwt application has no secret at all.
            del result["client_secret"]
            key = application.public_keys.get()
            result.update(public_key_kid=key.kid, public_key_alg=key.algorithm)
        if json_written(self, options, result):
            return
        self.stdout.write(f"Created M2M application {application.name} (id {application.pk}).")
        self.stdout.write(f"client_id:     {application.client_id}")
        if secret is None:
            self.stdout.write(f"public key:    {result['public_key_kid']} ({result['public_key_alg']})")
            self.stdout.write("It authenticates with private_key_jwt: no secret exists.")
            return
        self.stdout.write(f"client_secret: {secret}")
        self.stdout.write("The secret is shown only now; store it safely.")
