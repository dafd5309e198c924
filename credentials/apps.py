"""App configuration for what every credential kind shares, and the API keys (credentials.api_keys)."""

from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "credentials"
    verbose_name = "Credentials"

    def ready(self) -> None:
        # Imported here, not at the top: these modules import models, which exist only once
        # the app registry is ready.
        from django.db.models.signals import post_save, pre_save

        # Registers the OpenAPI description of API-key authentication with drf-spectacular.
        from credentials.api_keys import schema  # noqa: F401
        from credentials.api_keys.kind import governed_kind
        from credentials.api_keys.verification import on_organization_saved
        from credentials.checks import check_webhook_destinations_are_secure  # noqa: F401 - registers it
        from credentials.governance.ownership import on_membership_event, on_user_pre_save, on_user_saved
        from credentials.governance.receivers import orphan_on_member_removed
        from credentials.governance.registry import register
        from credentials.home import PANELS
        from credentials.leaks import checks  # noqa: F401 - registers the public keys check
        from credentials.webhooks.events import on_audit_event
        from credentials.webhooks.services import webhook_secrets_reencrypt
        from portal.home import home_panel_register
        from portal.models import Organization, User
        from portal.services.audit import audit_listener_register
        from portal.services.encryption import encrypted_store_register
        from portal.signals import member_removed

        register(governed_kind())
        # Lifecycle webhooks are derived from audit events, in the same transaction.
        audit_listener_register("credentials.webhooks", on_audit_event)
        # A credential acts with its owner's current role: refresh cached state when it changes.
        audit_listener_register("credentials.authority", on_membership_event)
        # So does a deactivated (or reactivated) account, in every organisation.
        pre_save.connect(on_user_pre_save, sender=User, dispatch_uid="credentials.authority.user-pre")
        post_save.connect(on_user_saved, sender=User, dispatch_uid="credentials.authority.user")
        # A renamed organisation: API keys act under its new slug at once.
        post_save.connect(on_organization_saved, sender=Organization, dispatch_uid="credentials.api_key.org")
        # A member who leaves leaves their credentials orphaned (docs/governance.md).
        member_removed.connect(orphan_on_member_removed, dispatch_uid="credentials.orphan")
        for panel in PANELS:  # the API key card and the warnings on the organisation home
            home_panel_register(panel)
        # Webhook signing secrets are encrypted at rest: `reencrypt_secrets` moves them too.
        encrypted_store_register(
            "webhook_secrets", unit="webhook endpoint secret(s)", reencrypt=webhook_secrets_reencrypt
        )
