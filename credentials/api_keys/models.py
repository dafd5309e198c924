"""API keys: the standing credential kind. Only the public key id and a keyed digest are stored."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from credentials.api_keys import keys
from credentials.governance.models import (
    SECRETLESS_STATUSES,
    CredentialState,
    GovernedCredential,
    status_constraints,
)
from credentials.lifetimes import EXPIRING_WITHIN
from portal.models import ExpiringModel, TimestampedModel, actor_field, organization_field


class Environment(models.TextChoices):
    LIVE = "live", _("Live")
    TEST = "test", _("Test")


#: The quiet periods an owner may choose for a moved key's cut-over, in hours (credentials.api_keys.cutover).
CUTOVER_QUIET_PERIODS = [(1, _("1 hour")), (24, _("24 hours")), (168, _("7 days"))]
DEFAULT_CUTOVER_QUIET_HOURS = 24


class ApiKey(GovernedCredential, ExpiringModel, TimestampedModel):
    """A standing machine credential. Only the public key id and a keyed digest are stored, never the key."""

    organization = organization_field("api_keys")
    name = models.CharField(_("name"), max_length=100)
    description = models.CharField(
        _("description"), max_length=500, blank=True, help_text=_("What uses it and why, for reviewers.")
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="owned_api_keys",
        verbose_name=_("owner"),
        help_text=_("The member accountable for this key."),
    )
    # Scope names, copied from the catalogue when granted: verification then needs no join.
    scopes = models.JSONField(_("scopes"), default=list, blank=True)
    environment = models.CharField(
        _("environment"), max_length=8, choices=Environment.choices, default=Environment.LIVE
    )
    key_id = models.CharField(_("key id"), max_length=keys.KEY_ID_LENGTH, unique=True, editable=False)
    # Empty while the key is pending (requested, not yet issued): no secret exists then.
    digest = models.CharField(_("digest"), max_length=64, null=True, editable=False)
    pepper_id = models.CharField(_("pepper id"), max_length=16, blank=True, editable=False)
    last4 = models.CharField(
        _("last four characters"),
        max_length=4,
        blank=True,
        editable=False,
        help_text=_("The end of the checksum."),
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(_("last used from"), null=True, blank=True)
    replaces = models.OneToOneField(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="successor",
        verbose_name=_("replaces"),
        help_text=_("The key this one rotated; a key has at most one successor."),
    )
    rotated_at = models.DateTimeField(_("rotated"), null=True, blank=True)
    # One integration through its rotations: what its rate limit is counted under
    # (credentials.policy.api_key_budget), so a successor cannot start a fresh budget.
    lineage = models.CharField(
        _("lineage"),
        max_length=keys.KEY_ID_LENGTH,
        editable=False,
        help_text=_("The key id of the first key of its rotation chain, shared by every successor."),
    )
    revoked_by = actor_field(_("revoked by"))
    revocation_reason = models.CharField(_("revocation reason"), max_length=255, blank=True)
    # The cut-over after a move to an M2M application (credentials.api_keys.cutover); unused until then.
    cutover_quiet_hours = models.PositiveSmallIntegerField(
        _("cut-over quiet period (hours)"),
        choices=CUTOVER_QUIET_PERIODS,
        default=DEFAULT_CUTOVER_QUIET_HOURS,
        help_text=_("After a move: how long the key must go unused before it may be revoked."),
    )
    cutover_auto_revoke = models.BooleanField(
        _("revoke automatically after the quiet period"),
        default=False,
        help_text=_("After a move: revoke the key once its application is active and the key went quiet."),
    )

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="api_key_org_created")]
        constraints = [
            *status_constraints("api_key"),
            models.CheckConstraint(
                condition=Q(status__in=SECRETLESS_STATUSES, digest__isnull=True)
                | (~Q(status__in=SECRETLESS_STATUSES) & Q(digest__isnull=False)),
                name="api_key_digest_only_once_issued",
            ),
            models.CheckConstraint(
                condition=Q(environment__in=["live", "test"]), name="api_key_environment_valid"
            ),
            # An unset lineage would count the key on a budget of its own (credentials.policy).
            models.CheckConstraint(condition=~Q(lineage=""), name="api_key_lineage_set"),
            models.CheckConstraint(
                condition=Q(cutover_quiet_hours__in=[hours for hours, _label in CUTOVER_QUIET_PERIODS]),
                name="api_key_cutover_quiet_hours_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix}…{self.last4})"

    @property
    def display_prefix(self) -> str:
        """Return the non-secret start of the key: prefix, environment and key id."""
        return keys.display_prefix(self.environment, self.key_id)

    @property
    def state(self) -> str:
        """Return the stored status unless active, else `active` or `expired` (rotated keys expire)."""
        if self.status != CredentialState.ACTIVE:
            return self.status
        if self.is_expired:
            return CredentialState.EXPIRED
        return CredentialState.ACTIVE

    @property
    def in_overlap(self) -> bool:
        """Return whether the key was rotated and still works until its overlap ends."""
        return self.rotated_at is not None and self.state == CredentialState.ACTIVE

    def expires_soon(self, within: timedelta = EXPIRING_WITHIN) -> bool:
        """Return whether a working key stops within `within` (the inventory's `expiring` window)."""
        return (
            self.state == CredentialState.ACTIVE
            and self.expires_at is not None
            and self.expires_at <= timezone.now() + within
        )
