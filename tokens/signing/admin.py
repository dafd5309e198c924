"""Admin for JWT signing keys: rotate (with step-up), never the private material."""

from __future__ import annotations

from django.contrib import admin, messages

from portal.admin_mixins import ActionPermissionMixin, ImmutableAdminMixin
from portal.stepup import step_up_redirect
from tokens.models import SigningKey
from tokens.signing.services import signing_key_rotate


@admin.register(SigningKey)
class SigningKeyAdmin(ActionPermissionMixin, ImmutableAdminMixin, admin.ModelAdmin):
    list_display = ["kid", "algorithm", "status", "created_at", "retired_at", "publish_until"]
    list_filter = ["status", "algorithm"]
    fields = ["kid", "algorithm", "status", "public_jwk", "created_at", "retired_at", "publish_until"]
    readonly_fields = fields
    actions = ["rotate_rs256", "rotate_es256"]

    def _rotate(self, request, algorithm: str):
        # Rotating the key every token is signed with asks for a fresh password or second factor.
        stale = step_up_redirect(request)
        if stale is not None:
            return stale
        key, previous = signing_key_rotate(actor=request.user, algorithm=algorithm)
        note = (
            f" The previous key {previous.kid} stays published until"
            f" {previous.publish_until:%Y-%m-%d %H:%M} UTC."
            if previous
            else ""
        )
        self.message_user(
            request, f"Tokens are now signed with {algorithm} key {key.kid}.{note}", messages.SUCCESS
        )

    @admin.action(
        permissions=["act"], description="Rotate the signing key (new RS256 key; the selection is ignored)"
    )
    def rotate_rs256(self, request, queryset):
        return self._rotate(request, SigningKey.Algorithm.RS256)

    @admin.action(
        permissions=["act"], description="Rotate the signing key (new ES256 key; the selection is ignored)"
    )
    def rotate_es256(self, request, queryset):
        return self._rotate(request, SigningKey.Algorithm.ES256)
