"""The scope catalogue (shared by both credential kinds) and API keys."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.models import TimestampedModel

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
