"""Create the credentials a benchmark peer is driven with and print one as JSON.

With ``--count N --output FILE`` it also creates N credentials for the many-credential rows and
writes one ``Authorization`` header value per line to FILE (never printed).
"""

import base64
import json
from urllib.parse import quote_plus

from django.conf import settings
from django.core.management.base import BaseCommand
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_application_model
from rest_framework_api_key.models import APIKey


def basic(client_id: str, client_secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Command(BaseCommand):
    help = "Create one OAuth client-credentials application or one API key for the configured peer."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=0, help="also create this many for a file")
        parser.add_argument("--output", default="", help="file of Authorization header values")

    def handle(self, *args, **options):
        if settings.PEER_VARIANT == "apikey":
            _api_key, key = APIKey.objects.create_key(name="bench")
            self.write_many(options, self.many_keys)
            self.stdout.write(json.dumps({"key": key}))
            return
        application, secret = self.application("bench")
        self.write_many(options, self.many_applications)
        self.stdout.write(
            json.dumps(
                {
                    "client_id": application.client_id,
                    "client_secret": secret,
                    "stored_hasher": application.client_secret.split("$", 1)[0],
                }
            )
        )

    @staticmethod
    def write_many(options, make) -> None:
        if options["count"] and options["output"]:
            with open(options["output"], "w", encoding="utf-8") as out:
                out.writelines(f"{line}\n" for line in make(options["count"]))

    @staticmethod
    def many_keys(count: int) -> list[str]:
        # The library's own key generation and hashing, inserted in bulk.
        rows, lines = [], []
        for n in range(count):
            row = APIKey(name=f"bench-many-{n}")
            lines.append(f"Api-Key {APIKey.objects.assign_key(row)}")
            rows.append(row)
        APIKey.objects.bulk_create(rows, batch_size=1000)
        return lines

    def many_applications(self, count: int) -> list[str]:
        lines = []
        for n in range(count):
            application, secret = self.application(f"bench-many-{n}")
            lines.append(basic(application.client_id, secret))
        return lines

    @staticmethod
    def application(name: str):
        application_model = get_application_model()
        secret = generate_client_secret()
        # Saving hashes the secret with OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"], as for any user.
        application = application_model.objects.create(
            name=name,
            client_type=application_model.CLIENT_CONFIDENTIAL,
            authorization_grant_type=application_model.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret,
        )
        application.refresh_from_db()
        return application, secret
