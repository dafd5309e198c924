"""Staff queues in the admin: pending approvals, orphaned, overdue and suspended credentials of both kinds.

Every action goes through the governance services, so each change is audited with the staff actor,
and the four-eyes rule (nobody decides on their own request) holds here too.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from credentials.governance import approvals, common, org_policy, ownership, reviews
from credentials.governance.forms import ReassignForm
from credentials.governance.models import (
    CredentialRequest,
    CredentialStatus,
    Notice,
    OrganizationPolicy,
    PendingApproval,
    SuspensionReason,
)
from credentials.selectors import organization_members
from portal.admin_mixins import ActionPermissionMixin, SecretLookupsMixin, StepUpChangeFormMixin
from portal.json_input import JSONFormField
from portal.stepup import step_up_redirect


class RecordAdmin(admin.ModelAdmin):
    """A record staff read but never add, change or delete by hand (requests, leak reports)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The changelist (and its actions), never an edit form; and only for staff given this
        # model (its view or change permission), not for every staff account.
        return obj is None and super().has_change_permission(request, obj)


@admin.register(OrganizationPolicy)
class OrganizationPolicyAdmin(StepUpChangeFormMixin, admin.ModelAdmin):
    """The organisations' credential policy: saving asks for a fresh sign-in, as on the dashboard."""

    list_display = [
        "organization",
        "approve_new_api_keys",
        "approve_new_m2m_apps",
        "approve_scope_increases",
        "api_key_review_interval_days",
        "m2m_app_review_interval_days",
        "orphan_grace_days",
        "overdue_grace_days",
        "leaked_credential_action",
        "new_live_api_keys",
        "new_test_api_keys",
        "require_allowed_ips_for_live",
    ]
    search_fields = ["organization__slug", "organization__name"]
    autocomplete_fields = ["organization"]
    formfield_overrides = {models.JSONField: {"form_class": JSONFormField}}

    def get_readonly_fields(self, request, obj=None):
        return ["organization"] if obj else []

    def save_model(self, request: HttpRequest, obj: OrganizationPolicy, form, change: bool) -> None:
        # Through the service: the row is locked and the change audited with the staff actor.
        values = {
            name: form.cleaned_data[name] for name in form.changed_data if name in org_policy.policy_fields()
        }
        org_policy.policy_update(organization=obj.organization, actor=request.user, **values)
        obj.pk = org_policy.policy_for(obj.organization).pk

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DecisionForm(forms.Form):
    comment = forms.CharField(
        label="Comment",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded with each decision (audit log and the request's history).",
    )


class _DecideMixin(ActionPermissionMixin):
    def _decide(self, request: HttpRequest, queryset: QuerySet, decide, verb: str, imperative: str):
        # Approving or denying asks for a fresh password or second factor, like in the dashboard.
        stale = step_up_redirect(request)
        if stale is not None:
            return stale
        pending = queryset.filter(state="pending")
        form = DecisionForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            # First a page that lists what will be decided and asks for a comment; nothing changes yet.
            context = {
                **self.admin_site.each_context(request),
                "title": f"{imperative} {len(pending)} request(s)?",
                "verb": imperative,
                "form": form,
                "requests": pending.select_related("organization", "requester"),
                "skipped": queryset.exclude(state="pending").count(),
                "action": request.POST.get("action", ""),
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/credentials/governance/decide_requests.html", context)
        comment = form.cleaned_data["comment"].strip() or f"{verb} by staff in the admin."
        done, refused = 0, []
        for item in pending:
            try:
                decide(request=item, actor=request.user, comment=comment)
            except ValidationError as exc:
                refused.append(f"{item.credential_label}: {' '.join(exc.messages)}")
                continue
            done += 1
        if done:
            self.message_user(request, f"{verb} {done} request(s).", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.ERROR)

    @admin.action(permissions=["act"], description="Approve selected requests")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet):
        return self._decide(request, queryset, approvals.credential_request_approve, "Approved", "Approve")

    @admin.action(permissions=["act"], description="Deny selected requests")
    def deny_selected(self, request: HttpRequest, queryset: QuerySet):
        return self._decide(request, queryset, approvals.credential_request_deny, "Denied", "Deny")


@admin.register(CredentialRequest)
class CredentialRequestAdmin(_DecideMixin, RecordAdmin):
    """Requests, viewed only; decisions go through the actions (which call the services)."""

    list_display = [
        "credential_label",
        "kind",
        "request_type",
        "organization",
        "requester",
        "state",
        "created_at",
        "decided_by",
        "decided_at",
    ]
    list_filter = ["state", "kind", "request_type", "organization"]
    search_fields = ["credential_label", "requester__email", "organization__slug"]
    list_select_related = ["organization", "requester", "decided_by"]
    readonly_fields = [
        "organization",
        "kind",
        "object_id",
        "credential_label",
        "request_type",
        "requested_scopes",
        "previous_scopes",
        "lifetime_days",
        "justification",
        "requester",
        "state",
        "decided_by",
        "decided_at",
        "comment",
        "created_at",
    ]
    fields = readonly_fields
    actions = ["approve_selected", "deny_selected"]


@admin.register(PendingApproval)
class PendingApprovalAdmin(CredentialRequestAdmin):
    list_filter = ["kind", "request_type", "organization"]


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    # An empty "sent" is a notice the mail server has not taken yet (the next run tries again).
    list_display = ["notice_type", "kind", "object_id", "organization", "period", "created_at", "sent_at"]
    list_filter = ["notice_type", "kind"]
    readonly_fields = [
        "organization",
        "kind",
        "object_id",
        "notice_type",
        "period",
        "recipients",
        "subject",
        "body",
        "created_at",
        "sent_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        # A notice row is what keeps a once-only e-mail from going out again.
        return False


def _queue_conditions() -> dict[str, Q]:
    """Return each staff queue's condition, by the queue's URL value."""
    return {
        "pending": Q(status=CredentialStatus.PENDING),
        "orphaned": Q(orphaned_at__isnull=False, status__in=common.LIVE_STATUSES),
        "overdue": Q(
            review_due_at__lte=timezone.now(),
            status__in=[CredentialStatus.ACTIVE, CredentialStatus.SUSPENDED],
        ),
        "suspended": Q(status=CredentialStatus.SUSPENDED),
    }


class GovernanceQueueFilter(admin.SimpleListFilter):
    """The staff queues: pending, orphaned, review overdue, suspended, each with how many wait in it."""

    title = "governance queue"
    parameter_name = "queue"
    labels = {
        "pending": "Pending (no secret yet)",
        "orphaned": "Orphaned (owner left)",
        "overdue": "Review overdue",
        "suspended": "Suspended",
    }

    def lookups(self, request, model_admin):
        # One query for the four counts, over everything this admin lists.
        counts = model_admin.get_queryset(request).aggregate(
            **{queue: Count("pk", filter=condition) for queue, condition in _queue_conditions().items()}
        )
        return [(queue, f"{label} ({counts[queue]})") for queue, label in self.labels.items()]

    def queryset(self, request, queryset):
        condition = _queue_conditions().get(self.value() or "")
        return queryset if condition is None else queryset.filter(condition)


class GovernedCredentialAdminMixin(SecretLookupsMixin, ActionPermissionMixin):
    """Queue filter and bulk actions shared by the API key and M2M application admins.

    Giving a credential another owner asks for a fresh sign-in, in the change form and in the
    *reassign owner* action (docs/account-security.md).
    """

    governance_actions = ["suspend_selected", "restore_selected", "reassign_owner"]
    #: The governance state shown (read-only) on a credential's admin page, in this order.
    governance_fields = [
        "review_due_at",
        "last_reviewed_at",
        "last_reviewed_by",
        "orphaned_at",
        "suspended_at",
        "suspension_reason",
    ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST" and self.changes_power(request, object_id):
            stale = step_up_redirect(request)
            if stale is not None:
                return stale
        return super().change_view(request, object_id, form_url, extra_context)

    def changes_power(self, request, object_id) -> bool:
        """Return whether the posted change form gives the credential another owner."""
        object_id = str(object_id)
        # "²".isdigit() is true, and filter(pk="²") a ValueError: such an id is "not found" here too.
        if "owner" not in request.POST or not (object_id.isascii() and object_id.isdigit()):
            return False
        stored = self.model.objects.filter(pk=object_id).values_list("owner_id", flat=True).first()
        return str(stored or "") != request.POST["owner"]

    def refuse_change(self, request: HttpRequest, exc: ValidationError) -> None:
        """Keep the services' refusal of the saved change form (save_model) for the response.

        The form was valid, so Django goes on after save_model: the refusal is then shown alone,
        without "changed successfully", and the object's history records no change.
        """
        request.refused_change = " ".join(exc.messages)

    def log_change(self, request, obj, message):
        if getattr(request, "refused_change", None) is None:
            return super().log_change(request, obj, message)
        return None

    def response_change(self, request, obj):
        refused = getattr(request, "refused_change", None)
        if refused is None:
            return super().response_change(request, obj)
        self.message_user(request, refused, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def get_autocomplete_fields(self, request):
        # The owner is chosen from the credential's organisation (a short list, see get_form), not
        # searched for among every user.
        return [name for name in super().get_autocomplete_fields(request) if name != "owner"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        """Offer the members of the credential's organisation as owners, and say when the owner left."""
        form = super().get_form(request, obj, change=change, **kwargs)
        field = form.base_fields.get("owner")
        if obj is None or field is None:
            return form
        field.queryset = organization_members(obj.organization)
        field.label_from_instance = lambda user: user.email
        if obj.orphaned_at is not None or not field.queryset.filter(pk=obj.owner_id).exists():
            former = obj.owner.email if obj.owner_id else "The owner"
            field.empty_label = "— choose a member —"
            # The admin prints help text as HTML: the address and the name are escaped here.
            field.help_text = format_html(
                "{} left {}; choose one of its members to own this credential.", former, obj.organization.name
            )
        return form

    @admin.action(permissions=["act"], description="Suspend selected credentials")
    def suspend_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for credential in queryset.filter(status=CredentialStatus.ACTIVE):
            try:
                reviews.credential_suspend(
                    credential=credential, actor=request.user, reason=SuspensionReason.MANUAL
                )
            except ValidationError:
                continue
            done += 1
        self.message_user(request, f"Suspended {done} credential(s).", messages.SUCCESS)

    @admin.action(permissions=["act"], description="Restore selected suspended credentials")
    def restore_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for credential in queryset.filter(status=CredentialStatus.SUSPENDED):
            try:
                # Staff's own power, given here only: the action needs the change permission (`act`).
                reviews.credential_restore(credential=credential, actor=request.user, as_staff=True)
            except ValidationError:
                continue
            done += 1
        self.message_user(request, f"Restored {done} credential(s).", messages.SUCCESS)

    @admin.action(permissions=["act"], description="Reassign the owner of selected credentials")
    def reassign_owner(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if "apply" in request.POST:
            stale = step_up_redirect(request)
            if stale is not None:
                return stale
        organization_ids = set(queryset.values_list("organization_id", flat=True))
        if len(organization_ids) != 1:
            self.message_user(request, "Select credentials of one organisation at a time.", messages.ERROR)
            return None
        organization = queryset.first().organization
        form = ReassignForm(
            request.POST if "apply" in request.POST else None, members=organization_members(organization)
        )
        if form.is_valid():
            changed = 0
            for credential in queryset:
                try:
                    ownership.credential_reassign_owner(
                        credential=credential,
                        owner=form.cleaned_data["owner"],
                        actor=request.user,
                        via="admin",
                    )
                except ValidationError as exc:
                    self.message_user(request, f"{credential}: {' '.join(exc.messages)}", messages.ERROR)
                    continue
                changed += 1
            self.message_user(
                request,
                f"{changed} credential(s) now owned by {form.cleaned_data['owner'].email}.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Reassign the owner",
            "form": form,
            "credentials": queryset,
            "organization": organization,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/credentials/governance/reassign_owner.html", context)
