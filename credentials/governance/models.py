"""Governance models: the mixin both credential kinds share, the policy, requests and sent notices."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from credentials.governance.registry import policy_of
from credentials.lifetimes import MAX_LIFETIME_DAYS
from credentials.policy import (
    clean_rate_limit,
    exceeds,
    format_rate_limit,
    validate_allowed_ips,
    validate_rate_limit,
)
from portal.models import Organization, TimestampedModel, actor_field, organization_field


class CredentialStatus(models.TextChoices):
    """The stored lifecycle status of a governed credential (expiry is a time, not a status)."""

    PENDING = "pending", _("Pending")  # requested or approved, no secret exists yet
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")  # refused like revoked, restorable
    REVOKED = "revoked", _("Revoked")
    DENIED = "denied", _("Denied")  # its create request was denied; never had a secret


#: The state shown to people (lists, filters, the REST `status` field): the stored status, or
#: `expired` for a credential past its expiry time. Built from `CredentialStatus` so that every
#: kind shares one set of values.
CredentialState = models.TextChoices(
    "CredentialState",
    [(status.name, (status.value, status.label)) for status in CredentialStatus]
    + [("EXPIRED", ("expired", _("Expired")))],
)

#: Statuses whose credential holds no secret at all.
SECRETLESS_STATUSES = (CredentialStatus.PENDING, CredentialStatus.DENIED)


class SuspensionReason(models.TextChoices):
    ORPHANED = "orphaned", _("Owner left the organisation")
    REVIEW_OVERDUE = "review_overdue", _("Review overdue")
    MANUAL = "manual", _("Suspended by an administrator")
    LEAKED = "leaked", _("Secret reported leaked")


class NewApiKeys(models.TextChoices):
    """Whether members may create new API keys in one environment (the policy on kinds)."""

    ALLOWED = "allowed", _("Allowed")
    EXPIRING = "expiring", _("Allowed only with an expiry of at most N days")
    FORBIDDEN = "forbidden", _("Not allowed (M2M applications only)")


class LeakedCredentialAction(models.TextChoices):
    """What a leaked-secret report does to the credential (see docs/leak-reports.md)."""

    REVOKE = "revoke", _("Revoke it at once (an M2M application: the leaked client secret)")
    SUSPEND = "suspend", _("Suspend it (the portal's staff can restore it)")


def status_constraints(prefix: str) -> list[models.BaseConstraint]:
    """Return the check constraints every governed credential table carries."""
    return [
        models.CheckConstraint(
            condition=Q(status__in=CredentialStatus.values), name=f"{prefix}_status_valid"
        ),
        models.CheckConstraint(
            condition=Q(status="revoked", revoked_at__isnull=False)
            | (~Q(status="revoked") & Q(revoked_at__isnull=True)),
            name=f"{prefix}_revoked_at_matches_status",
        ),
        models.CheckConstraint(
            condition=Q(status="suspended", suspended_at__isnull=False)
            | (~Q(status="suspended") & Q(suspended_at__isnull=True)),
            name=f"{prefix}_suspended_at_matches_status",
        ),
    ]


def rate_limit_field(verbose_name: str, help_text: str) -> models.JSONField:
    """Return an optional rate limit, `{"requests": N, "per_seconds": S}` (credentials.policy)."""
    return models.JSONField(
        verbose_name,
        null=True,
        blank=True,
        default=None,
        validators=[validate_rate_limit],
        help_text=help_text,
    )


class GovernedCredential(models.Model):
    """Abstract base for every credential kind: status, who created it, review cycle, suspension, orphan
    state and runtime policy."""

    created_by = actor_field(_("created by"))
    status = models.CharField(
        _("status"), max_length=16, choices=CredentialStatus.choices, default=CredentialStatus.ACTIVE
    )
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    review_due_at = models.DateTimeField(_("review due"), null=True, blank=True, db_index=True)
    last_reviewed_at = models.DateTimeField(_("last reviewed"), null=True, blank=True)
    last_reviewed_by = actor_field(_("last reviewed by"))
    suspended_at = models.DateTimeField(_("suspended"), null=True, blank=True)
    suspension_reason = models.CharField(
        _("suspension reason"), max_length=32, choices=SuspensionReason.choices, blank=True
    )
    policy_flagged_at = models.DateTimeField(
        _("against the policy since"),
        null=True,
        blank=True,
        help_text=_(
            "Set when a policy change no longer allows a credential like this one to be created "
            "(e.g. live API keys not allowed); it keeps working. Cleared when the policy allows it again."
        ),
    )
    orphaned_at = models.DateTimeField(
        _("orphaned"),
        null=True,
        blank=True,
        db_index=True,
        help_text=_("When the owner stopped being a member; cleared by reassigning the owner."),
    )
    # Runtime policy (credentials.policy): enforced on every use, changed through
    # `credential_policy_set` (audited, step-up, effective on every server at once).
    allowed_ips = models.JSONField(
        _("allowed IP networks"),
        default=list,
        blank=True,
        validators=[validate_allowed_ips],
        help_text=_("IPv4/IPv6 CIDRs the credential may be used from (at most 100); empty: any address."),
    )
    rate_limit = rate_limit_field(_("rate limit"), _('{"requests": N, "per_seconds": S}; empty: no limit.'))

    class Meta:
        abstract = True

    @property
    def is_orphaned(self) -> bool:
        """Return whether the owner has left the organisation and nobody took over."""
        return self.orphaned_at is not None

    @property
    def review_overdue(self) -> bool:
        """Return whether the review date has passed."""
        return self.review_due_at is not None and self.review_due_at <= timezone.now()


def _max_days_field(verbose_name: str, help_text: str) -> models.PositiveIntegerField:
    """Return an optional longest lifetime in days, at most ten years (`help_text` says what empty means)."""
    return models.PositiveIntegerField(
        verbose_name,
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_LIFETIME_DAYS)],
        help_text=help_text,
    )


class OrganizationPolicy(TimestampedModel):
    """How an organisation governs its credentials; created with defaults on first use."""

    organization = models.OneToOneField(
        Organization,
        on_delete=models.CASCADE,
        related_name="credential_policy",
        verbose_name=_("organisation"),
    )
    approve_new_api_keys = models.BooleanField(_("approval required for new API keys"), default=False)
    approve_new_m2m_apps = models.BooleanField(_("approval required for new M2M applications"), default=False)
    approve_scope_increases = models.BooleanField(_("approval required for scope increases"), default=False)
    api_key_max_lifetime_days = _max_days_field(
        _("maximum API key lifetime (days)"), _("Empty: keys may live until revoked.")
    )
    client_secret_max_lifetime_days = _max_days_field(
        _("maximum client secret lifetime (days)"), _("Empty: secrets may live until rotated or revoked.")
    )
    default_rotation_overlap_hours = models.PositiveIntegerField(
        _("default rotation overlap (hours)"), default=24, validators=[MaxValueValidator(168)]
    )
    api_key_review_interval_days = models.PositiveIntegerField(
        _("API key review interval (days)"),
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(730)],
    )
    m2m_app_review_interval_days = models.PositiveIntegerField(
        _("M2M application review interval (days)"),
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(730)],
    )
    orphan_grace_days = models.PositiveIntegerField(
        _("orphan grace (days)"),
        default=14,
        validators=[MaxValueValidator(365)],
        help_text=_("How long a credential whose owner left keeps working before it is suspended."),
    )
    overdue_grace_days = models.PositiveIntegerField(
        _("overdue review grace (days)"),
        default=14,
        validators=[MaxValueValidator(365)],
        help_text=_("How long a credential with an overdue review keeps working before it is suspended."),
    )
    new_live_api_keys = models.CharField(
        _("new live API keys"),
        max_length=16,
        choices=NewApiKeys.choices,
        default=NewApiKeys.ALLOWED,
        help_text=_("Existing keys keep working whatever you choose; they are flagged in the inventory."),
    )
    new_live_api_keys_max_days = _max_days_field(
        _("live API keys: longest expiry (days)"),
        _("For “allowed only with an expiry”: a new live key expires within this many days."),
    )
    new_test_api_keys = models.CharField(
        _("new test API keys"), max_length=16, choices=NewApiKeys.choices, default=NewApiKeys.ALLOWED
    )
    new_test_api_keys_max_days = _max_days_field(
        _("test API keys: longest expiry (days)"),
        _("For “allowed only with an expiry”: a new test key expires within this many days."),
    )
    leaked_credential_action = models.CharField(
        _("when a secret is reported leaked"),
        max_length=16,
        choices=LeakedCredentialAction.choices,
        default=LeakedCredentialAction.REVOKE,
        help_text=_(
            "What happens at once when a secret scanner (GitHub) reports a key or client secret of "
            "this organisation in public; the owner and admins are emailed either way."
        ),
    )
    # Runtime policy rules (docs/governance.md): checked when a credential is created or its
    # runtime policy changes (`org_policy.runtime_policy_for_new` / `check_runtime_policy_change`).
    require_allowed_ips_for_live = models.BooleanField(
        _("require an IP allowlist on live credentials"),
        default=False,
        help_text=_(
            "Live API keys and M2M applications must name the networks they are used from. "
            "Existing ones without an allowlist keep working; they are flagged in the inventory."
        ),
    )
    default_rate_limit = rate_limit_field(
        _("default rate limit"),
        _('Given to a new credential created without a limit: {"requests": N, "per_seconds": S}.'),
    )
    max_rate_limit = rate_limit_field(
        _("rate limit ceiling"),
        _(
            'The highest average rate a credential may get: {"requests": N, "per_seconds": S}; a '
            "credential's N/S may not exceed it. A new credential without a limit (and no default) "
            "gets the ceiling."
        ),
    )

    class Meta:
        verbose_name = _("organisation policy")
        verbose_name_plural = _("organisation policies")
        constraints = [
            models.CheckConstraint(
                condition=Q(new_live_api_keys__in=["allowed", "expiring", "forbidden"])
                & Q(new_test_api_keys__in=["allowed", "expiring", "forbidden"]),
                name="policy_new_api_keys_valid",
            ),
            models.CheckConstraint(
                condition=(~Q(new_live_api_keys="expiring") | Q(new_live_api_keys_max_days__isnull=False))
                & (~Q(new_test_api_keys="expiring") | Q(new_test_api_keys_max_days__isnull=False)),
                name="policy_expiring_api_keys_have_days",
            ),
        ]

    def __str__(self) -> str:
        return f"Policy of {self.organization}"

    def clean(self) -> None:
        try:
            # The N/S spelling ("100/60") passes the field's validator as text: compare dicts.
            self.default_rate_limit = clean_rate_limit(self.default_rate_limit)
            self.max_rate_limit = clean_rate_limit(self.max_rate_limit)
        except ValidationError:
            return  # the field's own validator reports it
        if self.default_rate_limit and exceeds(self.default_rate_limit, self.max_rate_limit):
            raise ValidationError(
                {
                    "default_rate_limit": _("The default may not exceed the ceiling (%(ceiling)s).")
                    % {"ceiling": format_rate_limit(self.max_rate_limit)}
                }
            )
        for environment in ("live", "test"):
            if getattr(self, f"new_{environment}_api_keys") == NewApiKeys.EXPIRING and not getattr(
                self, f"new_{environment}_api_keys_max_days"
            ):
                raise ValidationError(
                    {f"new_{environment}_api_keys_max_days": _("Give the longest expiry, in days.")}
                )

    def new_api_keys(self, environment: str) -> tuple[str, int | None]:
        """Return whether new API keys in `environment` are allowed, and the longest expiry in days."""
        rule = getattr(self, f"new_{environment}_api_keys", NewApiKeys.ALLOWED)
        days = getattr(self, f"new_{environment}_api_keys_max_days", None)
        return rule, (days if rule == NewApiKeys.EXPIRING else None)

    def kind_setting(self, kind: str, setting: str) -> Any:
        """Return one of a kind's settings (`KindPolicy` attribute name) from the column the kind declares."""
        return getattr(self, getattr(policy_of(kind), setting))

    def requires_approval_for(self, kind: str) -> bool:
        """Return whether a new credential of `kind` needs an approval."""
        return bool(self.kind_setting(kind, "approve_new"))

    def review_interval(self, kind: str) -> timedelta:
        """Return the review interval for `kind`."""
        return timedelta(days=self.kind_setting(kind, "review_interval_days"))

    def max_lifetime_days(self, kind: str) -> int | None:
        """Return the longest lifetime in days the policy allows a secret of `kind`, or None."""
        return self.kind_setting(kind, "max_lifetime_days")


class RequestType(models.TextChoices):
    CREATE = "create", _("New credential")
    SCOPE_INCREASE = "scope_increase", _("Scope increase")


class RequestState(models.TextChoices):
    PENDING = "pending", _("Waiting for approval")
    APPROVED = "approved", _("Approved")
    DENIED = "denied", _("Denied")
    CANCELLED = "cancelled", _("Cancelled")


class CredentialRequest(TimestampedModel):
    """A request to create a credential or widen its scopes, for either kind (kind + object id)."""

    organization = organization_field("credential_requests")
    kind = models.CharField(_("kind"), max_length=16)
    object_id = models.PositiveBigIntegerField(_("credential id"))
    credential_label = models.CharField(_("credential"), max_length=255)
    request_type = models.CharField(_("type"), max_length=16, choices=RequestType.choices)
    requested_scopes = models.JSONField(_("requested scopes"), default=list, blank=True)
    previous_scopes = models.JSONField(_("scopes before"), default=list, blank=True)
    lifetime_days = models.PositiveIntegerField(_("requested lifetime (days)"), null=True, blank=True)
    justification = models.TextField(_("justification"), max_length=2000)
    requester = actor_field(_("requested by"), blank=False)
    #: The interface that filed it where the requester did not: `cli` (an operator, for the
    #: requester); empty when the requester asked themselves.
    via = models.CharField(_("filed via"), max_length=32, blank=True, default="")
    state = models.CharField(
        _("state"), max_length=16, choices=RequestState.choices, default=RequestState.PENDING, db_index=True
    )
    decided_by = actor_field(_("decided by"))
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    comment = models.CharField(_("comment"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("credential request")
        verbose_name_plural = _("credential requests")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "state"], name="cred_request_org_state"),
            models.Index(fields=["kind", "object_id"], name="cred_request_target"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "object_id"],
                condition=Q(state="pending"),
                name="cred_request_one_pending_per_credential",
            ),
            models.CheckConstraint(
                condition=Q(state="pending", decided_at__isnull=True)
                | (~Q(state="pending") & Q(decided_at__isnull=False)),
                name="cred_request_decided_at_matches_state",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_request_type_display()}: {self.credential_label}"

    @property
    def filed_by_operator(self) -> bool:
        """Return whether an operator filed it on the command line, for the requester."""
        return self.via == "cli"


class PendingApprovalManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(state=RequestState.PENDING)


class PendingApproval(CredentialRequest):
    """The staff queue of requests waiting for a decision (an admin changelist)."""

    objects = PendingApprovalManager()

    class Meta:
        proxy = True
        verbose_name = _("pending approval")
        verbose_name_plural = _("pending approvals")


class Notice(models.Model):
    """One lifecycle email; the unique constraint makes each notice go out once.

    The row is written when the notice is due, with the message as rendered then; `sent_at` is
    set once the mail server took it. A notice the server refused, or that a killed run never
    sent, is sent again by the next `send_credential_notices` run (`notices_retry`).
    """

    organization = organization_field("+")
    kind = models.CharField(_("kind"), max_length=16)
    object_id = models.PositiveBigIntegerField(_("credential id"))
    notice_type = models.CharField(_("notice"), max_length=32)
    period = models.CharField(
        _("period"), max_length=64, help_text=_("What makes a repeat a new notice, e.g. the due date.")
    )
    recipients = models.JSONField(_("recipients"), default=list)
    subject = models.TextField(_("subject"), blank=True, default="")
    body = models.TextField(_("body"), blank=True, default="")
    created_at = models.DateTimeField(_("due"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True, help_text=_("Empty: not sent yet."))

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "object_id", "notice_type", "period"], name="notice_once_per_period"
            )
        ]
        indexes = [
            # The retry's query: the few notices not sent yet.
            models.Index(
                fields=["created_at"], name="notice_unsent", condition=models.Q(sent_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.notice_type} for {self.kind} {self.object_id}"
