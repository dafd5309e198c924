"""The credentials app's models: the scope catalogue and usage buckets (shared by every credential kind).

The models of API keys, governance, leak reports and webhooks live in their packages and are
imported here so that Django registers them in this app (same app label, same tables).
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from credentials.api_keys.models import ApiKey, Environment  # noqa: F401 - registers the API keys
from credentials.governance.models import (  # noqa: F401 - the governance models live in this app
    CredentialRequest,
    Notice,
    OrganizationPolicy,
    PendingApproval,
)
from credentials.insight.models import UsageClientIp, UsageDenial, UsageScope  # noqa: F401 - usage insight
from credentials.leaks.models import LeakReport  # noqa: F401 - the leak reports live in this app
from credentials.webhooks.models import (  # noqa: F401 - the webhook models live in this app
    DeliveryWorkerHeartbeat,
    WebhookDelivery,
    WebhookEndpoint,
)
from portal.models import Organization, TimestampedModel

scope_name_validator = RegexValidator(
    r"^[a-z][a-z0-9_.-]*(:[a-z0-9_.-]+)*$",
    _("Use lower-case words separated by ':' such as 'orders:read'."),
)


class Scope(TimestampedModel):
    """A permission a credential may hold, from the catalogue staff manage in the admin."""

    name = models.CharField(_("name"), max_length=100, unique=True, validators=[scope_name_validator])
    description = models.CharField(_("description"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("scope")
        verbose_name_plural = _("scopes")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UsageBucket(models.Model):
    """How often one credential was used in one minute, hour or day, by outcome (credentials.usage)."""

    class Granularity(models.TextChoices):
        MINUTE = "minute", _("Minute")
        HOUR = "hour", _("Hour")
        DAY = "day", _("Day")

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", verbose_name=_("organisation")
    )
    kind = models.CharField(_("kind"), max_length=16)
    # The public id: an API key's key id, an M2M application's client id.
    credential_id = models.CharField(_("credential id"), max_length=100)
    granularity = models.CharField(_("granularity"), max_length=8, choices=Granularity.choices)
    start = models.DateTimeField(_("start"))
    outcome = models.CharField(_("outcome"), max_length=24)
    count = models.PositiveIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("usage bucket")
        verbose_name_plural = _("usage buckets")
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "credential_id", "granularity", "start", "outcome"],
                name="usage_bucket_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "credential_id", "granularity", "start"], name="usage_org_cred"
            ),
            models.Index(fields=["granularity", "start"], name="usage_retention"),
        ]

    def __str__(self) -> str:
        return f"{self.credential_id} {self.granularity} {self.start:%Y-%m-%d %H:%M} {self.outcome}"
