"""Recent client IPs, recent denials and scope use per credential (rolled up by credentials.insight.recorder).

Each table is bounded per credential: the roll-up keeps the 20 most recent IPs and denials;
scope rows are at most the credential's scopes. `kind` and `credential_id` are those of
`UsageBucket` (a kind's key, the credential's public id).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.models import organization_field


class _PerCredential(models.Model):
    organization = organization_field("+")
    kind = models.CharField(_("kind"), max_length=16)
    credential_id = models.CharField(_("credential id"), max_length=100)

    class Meta:
        abstract = True


class UsageClientIp(_PerCredential):
    """A client address that used a credential: how often, and when last (valid uses and refusals)."""

    ip = models.GenericIPAddressField(_("IP address"))
    count = models.PositiveBigIntegerField(_("requests"), default=0)
    last_seen = models.DateTimeField(_("last seen"))

    class Meta:
        verbose_name = _("client IP of a credential")
        verbose_name_plural = _("client IPs of credentials")
        constraints = [
            models.UniqueConstraint(fields=["kind", "credential_id", "ip"], name="usage_ip_unique"),
        ]
        indexes = [models.Index(fields=["kind", "credential_id", "-last_seen"], name="usage_ip_recent")]

    def __str__(self) -> str:
        return f"{self.credential_id} {self.ip}"


#: The longest endpoint path a denial keeps (credentials.insight.recorder shortens to it).
ENDPOINT_LENGTH = 200


class UsageDenial(_PerCredential):
    """One refused use of a credential: when, why (a usage outcome), from where, at which endpoint."""

    at = models.DateTimeField(_("time"))
    outcome = models.CharField(_("outcome"), max_length=24)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    endpoint = models.CharField(_("endpoint"), max_length=ENDPOINT_LENGTH, blank=True)

    class Meta:
        verbose_name = _("denial of a credential")
        verbose_name_plural = _("denials of credentials")
        indexes = [models.Index(fields=["kind", "credential_id", "-at"], name="usage_denial_recent")]

    def __str__(self) -> str:
        return f"{self.credential_id} {self.at:%Y-%m-%d %H:%M:%S} {self.outcome}"


class UsageScope(_PerCredential):
    """A scope a credential's requests needed: how often, and when last."""

    scope = models.CharField(_("scope"), max_length=100)
    count = models.PositiveBigIntegerField(_("requests"), default=0)
    last_used = models.DateTimeField(_("last used"))

    class Meta:
        verbose_name = _("scope use of a credential")
        verbose_name_plural = _("scope uses of credentials")
        constraints = [
            models.UniqueConstraint(fields=["kind", "credential_id", "scope"], name="usage_scope_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.credential_id} {self.scope}"
