"""App configuration for OAuth 2.0 M2M applications and JWT access tokens."""

from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Tokens"

    def ready(self):
        from credentials.governance.registry import register
        from tokens import checks, schema  # noqa: F401 - registers system checks and the OpenAPI scheme
        from tokens.services import federated_governed_kind, governed_kind

        register(governed_kind())
        register(federated_governed_kind())
