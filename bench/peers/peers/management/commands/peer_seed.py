"""Create the credential a benchmark peer is driven with and print it as JSON."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_application_model
from rest_framework_api_key.models import APIKey


class Command(BaseCommand):
    help = "Create one OAuth client-credentials application or one API key for the configured peer."

    def handle(self, *args, **options):
        if settings.PEER_VARIANT == "apikey":
            _api_key, key = APIKey.objects.create_key(name="bench")
            self.stdout.write(json.dumps({"key": key}))
            return
        application_model = get_application_model()
        secret = generate_client_secret()
        # Saving hashes the secret with OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"], as for any user.
        application = application_model.objects.create(
            name="bench",
            client_type=application_model.CLIENT_CONFIDENTIAL,
            authorization_grant_type=application_model.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret,
        )
        application.refresh_from_db()
        self.stdout.write(
            json.dumps(
                {
                    "client_id": application.client_id,
                    "client_secret": secret,
                    "stored_hasher": application.client_secret.split("$", 1)[0],
                }
            )
        )
