"""App configuration for OAuth 2.0 M2M applications and JWT access tokens."""

from django.apps import AppConfig, apps


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Tokens"

    def ready(self):
        # Imported here, not at the top: these modules import models, which exist only once
        # the app registry is ready.
        from credentials.governance.registry import register
        from portal.home import home_panel_register
        from portal.services.encryption import encrypted_store_register
        from tokens import checks, schema  # noqa: F401 - registers system checks and the OpenAPI scheme
        from tokens.clients.kind import governed_kind
        from tokens.clients.snapshot import connect_receivers
        from tokens.federation.kind import federated_governed_kind
        from tokens.home import PANELS
        from tokens.signing.services import signing_keys_reencrypt

        connect_receivers()  # every write drops the shared client snapshot
        register(governed_kind())
        register(federated_governed_kind())
        for panel in PANELS:  # the M2M applications card on the organisation home
            home_panel_register(panel)
        # JWT signing keys are encrypted at rest: `reencrypt_secrets` moves them too.
        encrypted_store_register("signing_keys", unit="signing key(s)", reencrypt=signing_keys_reencrypt)
        if apps.is_installed("django.contrib.admin"):
            # Only with the admin installed (it imports django.contrib.admin).
            from tokens.admin import hide_unused_oauth_models

            hide_unused_oauth_models()
