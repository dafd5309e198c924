"""`manage.py create_m2m_app`: create an M2M application and print its client secret once."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.models import Organization, User
from tokens.services import m2m_app_create


class Command(BaseCommand):
    help = "Create an M2M application (client credentials) and print its client id and secret once."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organisation slug.")
        parser.add_argument("--name", required=True, help="Application name.")
        parser.add_argument("--owner", required=True, help="Email of the owning member.")
        parser.add_argument(
            "--scopes", default="", help='Space-separated scopes, e.g. "orders:read orders:write".'
        )
        parser.add_argument("--audiences", default="", help="Space-separated extra audiences (RFC 8707).")
        parser.add_argument("--token-lifetime", type=int, default=900, help="Seconds, 300 to 86400.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organisation with slug {options['org']!r}.")
        owner = User.objects.filter(email__iexact=options["owner"]).first()
        if owner is None:
            raise CommandError(f"No user with email {options['owner']!r}.")
        try:
            application, secret = m2m_app_create(
                organization=organization,
                name=options["name"],
                owner=owner,
                actor=None,
                scopes=options["scopes"].split(),
                audiences=options["audiences"].split(),
                token_lifetime=options["token_lifetime"],
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
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"Created M2M application {application.name} (id {application.pk}).")
        self.stdout.write(f"client_id:     {application.client_id}")
        self.stdout.write(f"client_secret: {secret}")
        self.stdout.write("The secret is shown only now; store it safely.")
