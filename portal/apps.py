"""App configuration for the portal project room."""

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        # Imported here: these modules import models, which exist once the app registry is ready.
        from portal import checks  # noqa: F401  (registers system checks)
        from portal.account_security import events  # noqa: F401  (connects the audit receivers)
        from portal.services.encryption import encrypted_store_register, mfa_secrets_reencrypt

        encrypted_store_register("mfa", unit="MFA authenticator(s)", reencrypt=mfa_secrets_reencrypt)
