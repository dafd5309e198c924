"""Admin building blocks shared by every room: records staff never write by hand, forms that ask
for a fresh sign-in."""

from __future__ import annotations

import re

from django.db.models.constants import LOOKUP_SEP

from portal.stepup import step_up_redirect

#: Columns derived from a secret (keyed digests, pepper ids, ciphertexts, session keys, an
#: authenticator's encrypted data): never shown, and never filtered on either.
SECRET_COLUMN = re.compile(r"digest|ciphertext|encrypted|pepper|session_key|^client_secret$|^data$")


class SecretLookupsMixin:
    """Refuse changelist lookups on secret-derived columns (`?digest__startswith=…`).

    Django allows a lookup on any local field, and a result count of 1 or 0 would read the value
    out a character at a time (its own UserAdmin refuses `password` lookups for this reason).
    A refused lookup is a 400 (`DisallowedModelAdminLookup`).
    """

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        if SECRET_COLUMN.search(lookup.split(LOOKUP_SEP)[0]):
            return False
        return super().lookup_allowed(lookup, value, request)


class ReadOnlyAdminMixin(SecretLookupsMixin):
    """No add and no edit in the admin: the rows are written by services (and audited there).

    The signatures fit both ModelAdmin and inlines (whose has_add_permission takes obj).
    """

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ActionPermissionMixin:
    """Admin actions that change something declare `permissions=["act"]`: only staff who may
    change the model (its `change_…` permission, or superusers) see and run them. Without it
    Django offers an action to anyone who may view the list; and read-only admins answer False
    to `has_change_permission` for everybody, so that cannot be the test either."""

    def has_act_permission(self, request) -> bool:
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


class ImmutableAdminMixin(ReadOnlyAdminMixin):
    """Read-only and never deleted by hand either (audit events, signing keys, client keys)."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class StepUpChangeFormMixin:
    """Saving the add or change form, or confirming a delete, asks for a fresh password or second
    factor first when the last proof is stale (`PORTAL_STEP_UP_SECONDS`): for models whose edits
    change who holds power."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST":
            stale = step_up_redirect(request)
            if stale is not None:
                return stale
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        if request.method == "POST" and self.has_delete_permission(request):
            stale = step_up_redirect(request)
            if stale is not None:
                return stale
        return super().delete_view(request, object_id, extra_context)
