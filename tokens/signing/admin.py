"""Admin for JWT signing keys: stage and rotate (with step-up), never the private material."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from portal.admin_mixins import ActionPermissionMixin, ImmutableAdminMixin
from portal.stepup import step_up_redirect
from tokens.models import SigningKey
from tokens.signing.services import signing_key_rotate, signing_key_stage


@admin.register(SigningKey)
class SigningKeyAdmin(ActionPermissionMixin, ImmutableAdminMixin, admin.ModelAdmin):
    """The actions act on the signing keys as a whole: the rows selected to run one are ignored."""

    list_display = ["kid", "algorithm", "status", "created_at", "retired_at", "publish_until"]
    list_filter = ["status", "algorithm"]
    fields = ["kid", "algorithm", "status", "public_jwk", "created_at", "retired_at", "publish_until"]
    readonly_fields = fields
    actions = ["stage_rs256", "stage_es256", "rotate_rs256", "rotate_es256"]

    def _stage(self, request, algorithm: str):
        # Staging changes what every verifier trusts: ask for a fresh password or second factor.
        stale = step_up_redirect(request)
        if stale is not None:
            return stale
        try:
            key = signing_key_stage(actor=request.user, algorithm=algorithm)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return None
        self.message_user(
            request,
            f"Key {key.kid} ({algorithm}) is published as the next signing key; it does not sign yet."
            " Rotate once it has been published for PORTAL_JWKS_MAX_AGE_SECONDS.",
            messages.SUCCESS,
        )
        return None

    def _rotate(self, request, algorithm: str):
        # Rotating the key every token is signed with asks for a fresh password or second factor.
        stale = step_up_redirect(request)
        if stale is not None:
            return stale
        try:
            key, previous = signing_key_rotate(actor=request.user, algorithm=algorithm)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return None
        note = (
            f" The previous key {previous.kid} stays published until"
            f" {previous.publish_until:%Y-%m-%d %H:%M} UTC."
            if previous
            else ""
        )
        self.message_user(
            request, f"Tokens are now signed with {algorithm} key {key.kid}.{note}", messages.SUCCESS
        )
        return None

    @admin.action(
        permissions=["act"],
        description="Stage the next signing key (new RS256 key, published, not signing yet)",
    )
    def stage_rs256(self, request, queryset):
        return self._stage(request, SigningKey.Algorithm.RS256)

    @admin.action(
        permissions=["act"],
        description="Stage the next signing key (new ES256 key, published, not signing yet)",
    )
    def stage_es256(self, request, queryset):
        return self._stage(request, SigningKey.Algorithm.ES256)

    @admin.action(
        permissions=["act"],
        description="Rotate the signing key (to the staged RS256 key, else a new one)",
    )
    def rotate_rs256(self, request, queryset):
        return self._rotate(request, SigningKey.Algorithm.RS256)

    @admin.action(
        permissions=["act"],
        description="Rotate the signing key (to the staged ES256 key, else a new one)",
    )
    def rotate_es256(self, request, queryset):
        return self._rotate(request, SigningKey.Algorithm.ES256)
