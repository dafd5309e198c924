"""Admin building blocks shared by every room: records that staff read but never write by hand."""

from __future__ import annotations


class ReadOnlyAdminMixin:
    """No add and no edit in the admin: the rows are written by services (and audited there).

    The signatures fit both ModelAdmin and inlines (whose has_add_permission takes obj).
    """

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ImmutableAdminMixin(ReadOnlyAdminMixin):
    """Read-only and never deleted by hand either (audit events, signing keys, client keys)."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
