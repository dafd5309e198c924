"""Admin building blocks shared by every room: records staff never write by hand, forms that ask
for a fresh sign-in."""

from __future__ import annotations

from portal.stepup import step_up_redirect


class ReadOnlyAdminMixin:
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
    """Saving the add or change form asks for a fresh password or second factor first, when the
    last proof is stale (`PORTAL_STEP_UP_SECONDS`): for models whose edits change who holds power."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST":
            stale = step_up_redirect(request)
            if stale is not None:
                return stale
        return super().changeform_view(request, object_id, form_url, extra_context)
