"""Admin for users, organisations (with memberships) and the read-only audit trail."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.db import transaction

from portal.account_security.sessions import user_sessions_end_all
from portal.admin_mixins import ImmutableAdminMixin, ReadOnlyAdminMixin
from portal.models import AuditEvent, Invitation, Membership, Organization, Role, User
from portal.services import organizations as org_services
from portal.services.audit import audit_log


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "full_name", "password1", "password2"]})
    ]
    actions = ["end_sessions"]

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data:
            # A deactivated account lends its credentials no role (portal.selectors.
            # authority_memberships): a change of who holds power, audited in every organisation.
            action = "portal.user.reactivated" if obj.is_active else "portal.user.deactivated"
            for membership in Membership.objects.filter(user=obj).select_related("organization"):
                audit_log(
                    action=action,
                    actor=request.user,
                    organization=membership.organization,
                    target=membership,
                    target_label=obj.email,
                    extra={"role": membership.role, "via": "admin"},
                )

    @admin.action(description="Sign the selected users out everywhere (end all their sessions)")
    def end_sessions(self, request, queryset):
        ended = 0
        for user in queryset:
            count = user_sessions_end_all(user=user, actor=request.user, via="admin")
            ended += count
        self.message_user(request, f"Ended {ended} session(s).", messages.SUCCESS)


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        owners = 0
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            if form.cleaned_data.get("DELETE"):
                continue
            if form.cleaned_data.get("role") == Role.OWNER:
                owners += 1
        if self.instance.pk and owners == 0:
            raise ValidationError("An organisation must keep at least one owner.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "mfa_required", "created_at"]
    list_filter = ["mfa_required"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_log(
            action="portal.organization.changed" if change else "portal.organization.created",
            actor=request.user,
            organization=obj,
            target=obj,
            extra={"fields": sorted(form.changed_data), "via": "admin"},
        )

    @transaction.atomic
    def save_formset(self, request, form, formset, change):
        # Inline membership edits go through the audit trail like the dashboard's.
        previous = {m.pk: m.role for m in Membership.objects.filter(organization=form.instance)}
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            # Like membership_remove: one audit event, and the member's credentials become orphaned.
            org_services.membership_delete(
                membership=obj, actor=request.user, extra={"role": obj.role, "via": "admin"}
            )
        for obj in instances:
            is_new = obj.pk is None
            obj.save()
            if is_new:
                action, extra = "portal.membership.created", {"role": obj.role, "via": "admin"}
            elif previous.get(obj.pk) != obj.role:
                action, extra = (
                    "portal.membership.role_changed",
                    {"from": previous.get(obj.pk), "to": obj.role},
                )
                extra["via"] = "admin"
            else:
                continue
            audit_log(
                action=action,
                actor=request.user,
                organization=form.instance,
                target=obj,
                target_label=obj.user.email,
                extra=extra,
            )
        formset.save_m2m()


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["email", "organization", "role", "state", "created_at", "expires_at"]
    list_filter = ["role", "organization"]
    search_fields = ["email", "organization__name"]
    # The token digest is never shown; invitations are created from the dashboard.
    fields = [
        "organization",
        "email",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    readonly_fields = fields


@admin.register(AuditEvent)
class AuditEventAdmin(ImmutableAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "action", "actor_label", "organization", "target_label", "ip_address"]
    list_filter = ["action", "organization"]
    search_fields = ["action", "actor_label", "target_label", "target_id"]
    date_hierarchy = "occurred_at"
    list_select_related = ["organization"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
