"""Admin for users, organisations (with memberships) and the read-only audit trail."""

from __future__ import annotations

from allauth.account.admin import EmailAddressAdmin as AllauthEmailAddressAdmin
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from portal.account_security.sessions import user_sessions_end_all
from portal.admin_mixins import (
    ActionPermissionMixin,
    ImmutableAdminMixin,
    ReadOnlyAdminMixin,
    StepUpChangeFormMixin,
)
from portal.models import AuditEvent, Invitation, Membership, Organization, Role, User
from portal.services import organizations as org_services
from portal.services.audit import audit_log
from portal.stepup import step_up_redirect

#: User fields whose change hands out the platform's own powers (the admin, every organisation).
STAFF_POWERS = ("is_staff", "is_superuser", "groups", "user_permissions")


class _AddressFreeIgnoringCase:
    """Store a new or changed address in its one canonical spelling, as invitations do, and refuse,
    on its field, an address another account holds in other letter case.

    Canonical: `owner@ａcme.test` or `owner@acme.test` with a zero-width space would otherwise be a
    second account that reads as the first (`canonical_invitation_email`). Sign-in finds accounts
    ignoring case; the database refuses the twin too (a constraint on lower(email)), but only this
    says which field is wrong. An unchanged address is left as it is stored.
    """

    def clean_email(self) -> str:
        email = self.cleaned_data["email"]
        if self.instance.pk is None or "email" in self.changed_data:
            email = org_services.canonical_invitation_email(email)
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise ValidationError(
                "Another account already has this email address, perhaps in other letter case.", code="unique"
            )
        return email


class UserAddForm(_AddressFreeIgnoringCase, AdminUserCreationForm):
    pass


class UserEditForm(_AddressFreeIgnoringCase, UserChangeForm):
    def clean(self):
        cleaned_data = super().clean()
        if "is_active" in self.changed_data and cleaned_data.get("is_active") is False:
            self._refuse_leaving_an_organisation_without_owner()
        return cleaned_data

    def _refuse_leaving_an_organisation_without_owner(self) -> None:
        """Refuse to switch off an organisation's last owner who can sign in, as the organisation
        admin and the services refuse to demote or remove them (`active_owners_left`)."""
        owned = list(
            Membership.objects.filter(user=self.instance, role=Role.OWNER)
            .select_related("organization")
            .order_by("organization_id")
        )
        # The owners' locks, held until the admin's transaction ends, are the ones every demotion,
        # removal and switch-off takes first (in organisation order, as here); each read comes
        # after its lock is held, so a concurrent switch-off of the other owner is seen.
        stranded = []
        for membership in owned:
            owners = org_services.lock_owners(membership.organization)
            if not org_services.active_owners_left(owners, membership):
                stranded.append(membership.organization.name)
        if stranded:
            self.add_error(
                "is_active",
                ValidationError(
                    "Switching this account off would leave %(organizations)s without an owner who can "
                    "sign in: promote another member to owner there first.",
                    code="last_owner",
                    params={"organizations": ", ".join(stranded)},
                ),
            )


@admin.register(User)
class UserAdmin(ActionPermissionMixin, StepUpChangeFormMixin, DjangoUserAdmin):
    """Accounts. Saving one, or setting its password, asks for a fresh sign-in: it can hand out the
    admin, switch an account off or give it another sign-in address.

    Accounts are switched off (*Active*), never deleted here: a deletion would end memberships
    without the removal flow (no audit, credentials not orphaned, perhaps no owner left).
    """

    form = UserEditForm
    add_form = UserAddForm
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name"]}),
        ("Permissions", {"fields": ["is_active", *STAFF_POWERS]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "full_name", "password1", "password2"]})
    ]
    actions = ["end_sessions"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Another staff account (its address, its password) is the way into its powers, a
        # superuser's into every power: only a superuser changes one. Their own account stays
        # theirs to change, its powers read-only (get_readonly_fields).
        if (
            obj is not None
            and not request.user.is_superuser
            and (obj.is_superuser or (obj.is_staff and obj.pk != request.user.pk))
        ):
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        # Staff who may change accounts (switch one off, say) hand out no platform power, their
        # own account's included: only a superuser grants the admin, superuser, groups or permissions.
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += STAFF_POWERS
        return readonly

    def user_change_password(self, request, id, form_url=""):
        if request.method != "POST":
            return super().user_change_password(request, id, form_url)
        stale = step_up_redirect(request)
        if stale is not None:
            return stale
        # "²".isdigit() is true, and filter(pk="²") a ValueError: Django answers such an id itself.
        known = str(id).isascii() and str(id).isdigit()
        with transaction.atomic():
            # Set (or disabled) or not: Django answers a refused form with a redirect too ("Conflicting
            # form data"), so the stored hash says, not the response. A new hash has a new salt.
            rows = User.objects.select_for_update().filter(pk=id) if known else User.objects.none()
            before = rows.values_list("password", flat=True).first()
            response = super().user_change_password(request, id, form_url)
            user = User.objects.filter(pk=id).first() if before is not None else None
            if user is not None and user.password != before:
                # Whoever sets an account's password holds the account: its organisations see it.
                self._audit_in_each_organization(
                    request, user, "portal.user.password_set", {"usable": user.has_usable_password()}
                )
        return response

    def _audit_in_each_organization(self, request, user: User, action: str, extra: dict) -> None:
        """Audit a change to the account in each of its organisations (with the member's role), or once
        with no organisation for an account of none (staff)."""
        memberships = list(Membership.objects.filter(user=user).select_related("organization"))
        for membership in memberships:
            audit_log(
                action=action,
                actor=request.user,
                organization=membership.organization,
                target=membership,
                target_label=user.email,
                extra={**extra, "role": membership.role, "via": "admin"},
            )
        if not memberships:
            audit_log(
                action=action,
                actor=request.user,
                organization=None,
                target=user,
                target_label=user.email,
                extra={**extra, "via": "admin"},
            )

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            return
        changed = set(form.changed_data)
        # Per organisation: what its members see change (who holds power there, who signs in).
        per_organization = []
        if "is_active" in changed:
            # A deactivated account lends its credentials no role (portal.selectors.
            # authority_memberships): a change of who holds power, audited in every organisation.
            action = "portal.user.reactivated" if obj.is_active else "portal.user.deactivated"
            per_organization.append((action, {}))
            if not obj.is_active:
                # Signed out everywhere (ASVS V7.4.2): reactivating later revives no old session,
                # nor an invitation it sent (each carried its inviter's authority).
                user_sessions_end_all(user=obj, actor=request.user, via="admin")
                org_services.user_invitations_revoke(user=obj, actor=request.user)
        if "email" in changed:
            per_organization.append(
                ("portal.user.email_changed", {"from": form.initial.get("email"), "to": obj.email})
            )
        for action, extra in per_organization:
            self._audit_in_each_organization(request, obj, action, extra)
        powers = sorted(changed.intersection(STAFF_POWERS))
        if powers:
            # The platform's own powers belong to no organisation: one event, for staff to read.
            audit_log(
                action="portal.user.staff_powers_changed",
                actor=request.user,
                organization=None,
                target=obj,
                target_label=obj.email,
                extra={
                    "fields": powers,
                    "is_staff": obj.is_staff,
                    "is_superuser": obj.is_superuser,
                    "via": "admin",
                },
            )

    @admin.action(
        permissions=["act"], description="Sign the selected users out everywhere (end all their sessions)"
    )
    def end_sessions(self, request, queryset):
        ended = skipped = 0
        for user in queryset:
            # Signing someone out is a change to their account: the rule of its change form (only a
            # superuser touches a superuser or another staff account) holds for each selected row.
            if not self.has_change_permission(request, user):
                skipped += 1
                continue
            ended += user_sessions_end_all(user=user, actor=request.user, via="admin")
        if skipped:
            self.message_user(
                request,
                f"Ended {ended} session(s). Skipped {skipped} account(s) that only a superuser may sign "
                "out (superusers and other staff).",
                messages.WARNING,
            )
        else:
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
            user = form.cleaned_data.get("user")
            # As in the services (active_owners_left): a switched-off owner can act for nobody.
            if form.cleaned_data.get("role") == Role.OWNER and user is not None and user.is_active:
                owners += 1
        # A row refused on its own (a stale role) lacks its role here: its error says what to do.
        if owners == 0 and not any(self.errors):
            # On add too: organization_create (dashboard, CLI) always starts one with its owner.
            if self.instance.pk is None:
                raise ValidationError("Add at least one owner who can sign in: an organisation needs one.")
            raise ValidationError("An organisation must keep at least one owner who can sign in.")
        if any(getattr(form, "cleaned_data", {}).get("DELETE") and form.stale for form in self.forms):
            # A removal decided on a role that is no longer the member's (promoted meanwhile, say).
            raise ValidationError(STALE_ROLE, code="stale")
        for form in self.forms:
            if form.instance.pk is not None and "user" in form.changed_data:
                # Another person in the same row would skip the removal (audit, orphaned
                # credentials) and the addition: remove the member and add the other one.
                form.add_error(
                    "user", "A membership stays with its person: remove it and add the other person."
                )


class _PersonShown(forms.HiddenInput):
    """A saved membership's person as text, their id posted back as it is."""

    is_hidden = False  # a column of the inline's table like any field, not a hidden input beside the row

    def __init__(self, person: User):
        super().__init__()
        self.person = person

    def render(self, name, value, attrs=None, renderer=None):
        return format_html("{}{}", super().render(name, value, attrs, renderer), self.person)


class _RoleShown(forms.CharField):
    """The role a saved member row showed, posted back hidden; never itself a change of the row."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def has_changed(self, initial, data) -> bool:
        return False


STALE_ROLE = "This member's role changed since you opened the page; reload it."


class MembershipInlineForm(forms.ModelForm):
    """A member row. A saved row carries the role it showed (`role_shown`), so a role changed since
    the page was read (a demotion in the dashboard) is never saved back over by staff saving the page:

    - a row staff left as it showed keeps the role stored now (the rest of the page is saved);
    - a row staff changed, or marked for removal, is refused (`stale`): staff reload and decide
      on what is stored. Applying their change would overwrite the dashboard's unseen.

    A row posted without `role_shown` (a page older than the field) may not change the role.
    """

    role_shown = _RoleShown()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stale = False
        if self.instance.pk is not None:
            # A saved row keeps its person (the formset refuses another one): shown from the row,
            # loaded with it, where the autocomplete widget would query its one option per row.
            self.fields["user"].widget = _PersonShown(self.instance.user)
            self.initial.setdefault("role_shown", self.instance.role)

    def clean(self):
        cleaned_data = super().clean()
        if self.instance.pk is None:
            return cleaned_data
        # `initial` holds the role as stored now: the formset's rows are read after the owners' lock
        # (OrganizationAdmin.get_object), which every role change and removal takes first.
        stored, shown = self.initial.get("role"), self.data.get(self.add_prefix("role_shown"))
        self.stale = shown is not None and shown != stored
        posted = cleaned_data.get("role")
        if shown == stored or posted is None or posted == stored:
            return cleaned_data
        if posted == shown:
            cleaned_data["role"] = stored  # left as it showed: the change made meanwhile stays
        else:
            self.add_error("role", ValidationError(STALE_ROLE, code="stale"))
        return cleaned_data


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipInlineForm
    formset = MembershipInlineFormSet
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "role_shown", "created_at"]
    readonly_fields = ["created_at"]

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if not self.has_change_permission(request, obj):
            fields.remove("role_shown")  # nothing is posted back from a view-only page
        return fields

    def get_queryset(self, request):
        # Each row's title is `str(membership)`: "person in organisation (role)".
        return super().get_queryset(request).select_related("user", "organization")


@admin.register(Organization)
class OrganizationAdmin(StepUpChangeFormMixin, admin.ModelAdmin):
    """Organisations and their members. Saving asks for a fresh sign-in: roles and the two-factor
    requirement decide who holds power."""

    list_display = ["name", "slug", "mfa_required", "created_at"]
    list_filter = ["mfa_required"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    # The slug is permanent: it is the `org_id` claim in every token the organisation's applications
    # mint, and services pin it (docs/validating-tokens.md#pin-the-organisation). Renamed, an old slug
    # would be free for a new organisation, whose tokens those services would take for the old one's.
    # A rename changes the name only.
    def get_readonly_fields(self, request, obj=None):
        return ["slug"] if obj is not None else []

    def get_prepopulated_fields(self, request, obj=None):
        # Django refuses a prepopulated field that is read-only: suggested from the name on add only.
        return {"slug": ["name"]} if obj is None else {}

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "slug":
            field.help_text = _(
                "Permanent once saved: it is the org_id in the organisation's tokens, and services pin it."
            )
        return field

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except IntegrityError:
            slug = request.POST.get("slug", "") if request.method == "POST" else ""
            if object_id is not None or not Organization.objects.filter(slug__iexact=slug).exists():
                raise
        # Two adds of one slug at once (a double click on Save): the form's unique check ran before
        # the other request committed, so the insert failed; everything this request wrote is rolled
        # back. Answered again, the form finds the slug taken and says so on its field.
        return super().changeform_view(request, object_id, form_url, extra_context)

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting one would take its audit trail and memberships with it unaudited, and turn
        # its own APIs in the resource-server catalogue into APIs open to every organisation.
        return False

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and request.method == "POST":
            # Inside the admin's transaction, before the forms read the memberships: a concurrent
            # demotion or removal (which locks the owners first, portal.services.organizations)
            # waits, or is seen, so "at least one owner" is checked against what is stored.
            org_services.lock_owners(obj)
        return obj

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            audit_log(
                action="portal.organization.created",
                actor=request.user,
                organization=obj,
                target=obj,
                extra={"fields": sorted(form.changed_data), "via": "admin"},
            )
            return
        changed = sorted(set(form.changed_data) - {"mfa_required"})
        if "mfa_required" in form.changed_data:
            # Through its service, as in the dashboard: it locks the organisation and audits
            # `portal.organization.mfa_requirement_changed` {from, to}. The save below writes the same value.
            org_services.organization_set_mfa_requirement(
                organization=obj, requirement=obj.mfa_required, actor=request.user
            )
        super().save_model(request, obj, form, change)
        if not changed:
            return  # only the requirement or the memberships changed, if anything: audited on their own
        # The name, old and new: what the organisation's log needs (the slug is read-only; no secret).
        changes = {
            name: {"from": form.initial.get(name), "to": form.cleaned_data.get(name)} for name in changed
        }
        audit_log(
            action="portal.organization.changed",
            actor=request.user,
            organization=obj,
            target=obj,
            extra={**changes, "via": "admin"},
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
            if not is_new:
                # Like membership_change_role: a demoted inviter's invitations beyond the new role go.
                org_services.invitations_revoke_beyond(membership=obj, role=obj.role, actor=request.user)
        formset.save_m2m()


@admin.register(Invitation)
class InvitationAdmin(ImmutableAdminMixin, admin.ModelAdmin):
    """Invitations, read-only: they are sent and revoked (audited) from the dashboard."""

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


# allauth's e-mail addresses: read-only here. An address is a way to sign in (allauth finds the
# account by it), so it changes in the account's own form (step-up, audited), never beside it;
# and marking addresses verified takes the change permission, not merely the right to look.
admin.site.unregister(EmailAddress)


@admin.register(EmailAddress)
class EmailAddressAdmin(ActionPermissionMixin, ReadOnlyAdminMixin, AllauthEmailAddressAdmin):
    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_act_permission(request):
            actions.pop("make_verified", None)
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# allauth's user sessions and authenticators, read-only. A session key is a bearer credential
# and an authenticator's `data` holds the encrypted TOTP secret: neither is shown or filtered on
# (SecretLookupsMixin). Staff end sessions with *Sign the selected users out everywhere*
# (audited); a member removes their own second factor from their account (audited).
admin.site.unregister(UserSession)
admin.site.unregister(Authenticator)


@admin.register(UserSession)
class UserSessionAdmin(ImmutableAdminMixin, admin.ModelAdmin):
    list_display = ["user", "created_at", "last_seen_at", "ip", "user_agent"]
    search_fields = ["user__email", "ip"]
    list_select_related = ["user"]
    fields = ["user", "created_at", "last_seen_at", "ip", "user_agent"]
    readonly_fields = fields


@admin.register(Authenticator)
class AuthenticatorAdmin(ImmutableAdminMixin, admin.ModelAdmin):
    list_display = ["user", "type", "created_at", "last_used_at"]
    list_filter = ["type"]
    search_fields = ["user__email"]
    list_select_related = ["user"]
    fields = ["user", "type", "created_at", "last_used_at"]
    readonly_fields = fields


# Groups hand out the platform's own powers to each of their members, like a user's own
# permissions: saving or deleting one asks for a fresh sign-in and is audited.
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(StepUpChangeFormMixin, DjangoGroupAdmin):
    """Groups, written by superusers only: a group's permissions are any permission at all, and staff
    who could change groups would grant their own group what they do not hold."""

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if change and not form.changed_data:
            return
        audit_log(
            action="portal.group.staff_powers_changed",
            actor=request.user,
            organization=None,
            target=form.instance,
            target_label=form.instance.name,
            extra={
                "fields": sorted(form.changed_data),
                "permissions": sorted(form.instance.permissions.values_list("codename", flat=True)),
                "members": form.instance.user_set.count(),
                "via": "admin",
            },
        )

    def delete_model(self, request, obj):
        with transaction.atomic():
            audit_log(
                action="portal.group.deleted",
                actor=request.user,
                organization=None,
                target=obj,
                target_label=obj.name,
                extra={"members": obj.user_set.count(), "via": "admin"},
            )
            super().delete_model(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through delete_view (step-up, audit)
        return actions
