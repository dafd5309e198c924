"""App configuration for API keys and the scope catalogue."""

from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "credentials"
    verbose_name = "Credentials"
