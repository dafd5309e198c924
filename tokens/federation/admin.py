"""Admin for federated identities: read-only, with the governance queue and actions (suspend, restore, owner).

Trusts are added from the dashboard (step-up) or `add_federated_identity`, and removed from the dashboard.
"""

from __future__ import annotations

from django.contrib import admin

from credentials.governance.admin import GovernanceQueueFilter, GovernedCredentialAdminMixin
from tokens.models import FederatedIdentity


@admin.register(FederatedIdentity)
class FederatedIdentityAdmin(GovernedCredentialAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "public_id",
        "application",
        "issuer",
        "subject",
        "status",
        "owner",
        "last_used_at",
    ]
    list_filter = [GovernanceQueueFilter, "status", "preset", "organization"]
    search_fields = ["public_id", "name", "issuer", "subject", "application__client_id", "owner__email"]
    actions = GovernedCredentialAdminMixin.governance_actions
    fields = [
        "public_id",
        "name",
        "organization",
        "application",
        "owner",
        "preset",
        "issuer",
        "jwks",
        "audience",
        "subject",
        "conditions",
        "max_token_age",
        "status",
        "suspended_at",
        "suspension_reason",
        "orphaned_at",
        "review_due_at",
        "last_reviewed_at",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
