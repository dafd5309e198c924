"""The record of a leaked-secret report, one row per leaked secret (registered in the credentials app)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.models import organization_field

#: Later sightings of the same secret kept on its report (the first is in `url`/`source`).
MAX_SIGHTINGS = 50


class LeakAction(models.TextChoices):
    """What the report did to the credential."""

    REVOKED = "revoked", _("Revoked")
    SECRET_REVOKED = "secret_revoked", _("Leaked client secret revoked")
    SUSPENDED = "suspended", _("Suspended")
    NONE = "none", _("Nothing: the secret no longer worked")


class LeakReport(models.Model):
    """A secret scanner's report that one of a credential's secrets was found in public.

    Never the secret: `token_sha256` is the SHA-256 of the reported token (GitHub's own
    `token_hash`), unique, so a replayed report finds this row and changes nothing.
    """

    organization = organization_field("+")
    kind = models.CharField(_("kind"), max_length=16)
    object_id = models.PositiveBigIntegerField(_("credential id"))
    credential_label = models.CharField(_("credential"), max_length=255)
    secret_hint = models.CharField(
        _("secret"), max_length=40, blank=True, help_text=_("The non-secret start of the leaked secret.")
    )
    token_sha256 = models.CharField(_("token SHA-256"), max_length=64, unique=True, editable=False)
    token_type = models.CharField(_("reported type"), max_length=100, blank=True)
    url = models.CharField(_("found at"), max_length=2048, blank=True)
    source = models.CharField(_("source"), max_length=64, blank=True)
    reporter = models.CharField(_("reported by"), max_length=64, default="github")
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    action_taken = models.CharField(_("action taken"), max_length=16, choices=LeakAction.choices)
    sightings = models.JSONField(
        _("later sightings"),
        default=list,
        blank=True,
        help_text=_("Other places the same secret was reported later: url, source, when."),
    )

    class Meta:
        verbose_name = _("leak report")
        verbose_name_plural = _("leak reports")
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["kind", "object_id"], name="leak_report_credential"),
            models.Index(fields=["organization", "-received_at"], name="leak_report_org_received"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action_taken__in=LeakAction.values), name="leak_report_action_valid"
            )
        ]

    def __str__(self) -> str:
        return f"Leak of {self.credential_label} ({self.received_at:%Y-%m-%d})"

    @property
    def url_is_link(self) -> bool:
        """Return whether `url` may be rendered as a link (http or https only, never `javascript:`)."""
        return self.url.lower().startswith(("https://", "http://"))
