"""App configuration for OAuth 2.0 M2M applications and JWT access tokens."""

from django.apps import AppConfig, apps


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Tokens"

    def ready(self):
        from credentials.governance.registry import register
        from tokens import checks, schema  # noqa: F401 - registers system checks and the OpenAPI scheme
        from tokens.services import governed_kind

        register(governed_kind())
        if apps.is_installed("django.contrib.admin"):
            from tokens.admin import hide_unused_oauth_models

            hide_unused_oauth_models()
