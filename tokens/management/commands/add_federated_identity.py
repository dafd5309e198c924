"""`manage.py add_federated_identity`: trust an external issuer's tokens for an M2M application."""

from __future__ import annotations

from credentials.cli import json_written, read_text_file, service_refusals, user_by_email
from portal.management.base import PortalCommand
from tokens.federation.services import federated_identity_create
from tokens.management.cli import add_client_id_argument, application_named
from tokens.models import FederatedIdentity


class Command(PortalCommand):
    help = (
        "Let an M2M application authenticate with another issuer's tokens (GitHub Actions, GitLab CI, "
        "Kubernetes, SPIFFE): workload identity federation, no stored secret."
    )

    def add_arguments(self, parser):
        add_client_id_argument(parser)
        parser.add_argument("--issuer", required=True, help="The external tokens' `iss` (an https URL).")
        parser.add_argument(
            "--subject", required=True, help="The `sub` to accept, exactly or with `*` wildcards."
        )
        parser.add_argument(
            "--audience", default="", help="The `aud` required (default: this portal's issuer)."
        )
        parser.add_argument(
            "--condition",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="A claim that must have this value (repeat; the same name twice accepts either value).",
        )
        parser.add_argument(
            "--max-token-age", type=int, default=None, help="Seconds since `iat`, 60 to 86400 (default 3600)."
        )
        parser.add_argument(
            "--preset", default="custom", choices=FederatedIdentity.Preset.values, help="Platform preset."
        )
        parser.add_argument("--name", default="", help="A label (default: preset and subject).")
        parser.add_argument(
            "--owner", default="", help="Email of the owning member (default: the app's owner)."
        )
        parser.add_argument(
            "--jwks-file", metavar="PATH", help="A JWKS or SPIFFE trust bundle to use instead of discovery."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        application = application_named(options)
        owner = user_by_email(options["owner"]) if options["owner"] else None
        jwks = read_text_file(options["jwks_file"]) if options["jwks_file"] else None
        with service_refusals():
            identity, _request = federated_identity_create(
                application=application,
                actor=None,
                issuer=options["issuer"],
                subject=options["subject"],
                audience=options["audience"],
                conditions=options["condition"],
                max_token_age=options["max_token_age"],
                preset=options["preset"],
                jwks=jwks,
                name=options["name"],
                owner=owner,
                via="cli",
            )
        result = {
            "id": identity.public_id,
            "client_id": application.client_id,
            "name": identity.name,
            "status": identity.status,
            "issuer": identity.issuer,
            "subject": identity.subject,
            "audience": identity.audience,
            "conditions": identity.conditions,
            "max_token_age": identity.max_token_age,
            "preset": identity.preset,
            "owner": identity.owner.email,
        }
        if json_written(self, options, result):
            return
        self.stdout.write(f"Added federated identity {identity.public_id} to {application.client_id}.")
        self.stdout.write(
            f"issuer:  {identity.issuer}\nsubject: {identity.subject}\naudience: {identity.audience}"
        )
        self.stdout.write(
            "Present the external token at /oauth/token as client_assertion (jwt-bearer) with this client_id."
        )
