"""Users, organisations, memberships, invitations and the audit trail."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TimestampedModel(models.Model):
    """Abstract base with creation and modification times."""

    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True


def actor_field(verbose_name: str, *, blank: bool = True) -> models.ForeignKey:
    """Return a row's reference to the user who did something to it (created, reviewed, decided it):
    no reverse accessor, and kept as null when that user is deleted."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=blank,
        related_name="+",
        verbose_name=verbose_name,
    )


class ExpiringModel(models.Model):
    """Abstract base for rows that stop being usable at `expires_at` (indexed)."""

    expires_at = models.DateTimeField(_("expires"), null=True, blank=True, db_index=True)

    class Meta:
        abstract = True

    @property
    def is_expired(self) -> bool:
        """Return whether the row's expiry has passed."""
        return self.expires_at is not None and self.expires_at <= timezone.now()


class UserManager(BaseUserManager):
    """Manager for the email-login user model."""

    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        email = self.normalize_email(email).lower()
        user = self.model(email=email, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        """Create and return a regular user."""
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        """Create and return a staff superuser."""
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, email: str):
        """Return the user whose address is `email` ignoring letter case (as str.lower() folds it).

        `email__iexact` alone is not that: PostgreSQL compares UPPER() of both sides, which folds
        look-alikes such as the dotless ı or the long ſ into I and S, so `admın@…` found `admin@…`
        under a failed-sign-in budget of its own (PortalAccountAdapter keys it by str.lower()).
        The database narrows the candidates; Python keeps the one allauth's backend and password
        reset would find too. Two rows left (only where the database's LOWER(), which the unique
        constraint uses, and Python's differ) are ambiguous: they match nobody rather than a 500.
        """
        wanted = email.lower()
        matches = [user for user in self.filter(email__iexact=email) if user.email.lower() == wanted]
        if len(matches) != 1:
            raise self.model.DoesNotExist(f"No single {self.model._meta.object_name} has this address.")
        return matches[0]


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with an email address and a password."""

    email = models.EmailField(_("email address"), unique=True)
    full_name = models.CharField(_("full name"), max_length=150, blank=True)
    is_staff = models.BooleanField(
        _("staff status"), default=False, help_text=_("Whether the user can log into the admin site.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ["email"]
        constraints = [
            # Sign-in finds the account ignoring case (UserManager.get_by_natural_key): `DEV@acme.test`
            # beside `dev@acme.test` would make signing in as either fail.
            models.UniqueConstraint(
                Lower("email"),
                name="user_email_unique_ignoring_case",
                violation_error_message=_("Another account has this email address (in other letter case)."),
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        """Return the full name, or the email when none is set."""
        return self.full_name or self.email

    def get_short_name(self) -> str:
        """Return the short name shown in the navigation."""
        return self.full_name.split(" ")[0] if self.full_name else self.email


class MfaRequirement(models.TextChoices):
    NONE = "none", _("Not required")
    MANAGERS = "managers", _("Required for owners and admins")
    EVERYONE = "everyone", _("Required for every member")


class Organization(TimestampedModel):
    """A customer organisation: the tenant every credential belongs to."""

    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    name = models.CharField(_("name"), max_length=200)
    mfa_required = models.CharField(
        _("two-factor authentication"),
        max_length=10,
        choices=MfaRequirement.choices,
        default=MfaRequirement.NONE,
        help_text=_("Members who must use a second factor are sent to enrolment until they have one."),
    )

    class Meta:
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")
        ordering = ["name"]
        constraints = [
            # `ACME` beside `acme`: two tenants a person (or a resource server comparing the
            # `org_id` claim without case) could take for one.
            models.UniqueConstraint(
                Lower("slug"),
                name="organization_slug_unique_ignoring_case",
                violation_error_message=_("Another organisation has this slug (in other letter case)."),
            ),
        ]

    def __str__(self) -> str:
        return self.name


def organization_field(related_name: str) -> models.ForeignKey:
    """Return the organisation a row belongs to (deleted with it): every tenant-owned table has one."""
    return models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name=related_name, verbose_name=_("organisation")
    )


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    MEMBER = "member", _("Member")


#: Roles that may manage members, invitations, the audit log and (later) approvals.
MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class Membership(TimestampedModel):
    """A user's role in one organisation."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    organization = organization_field("memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["organization__name", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_one_per_user_and_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"

    @property
    def is_manager(self) -> bool:
        """Return whether this role may manage the organisation."""
        return self.role in MANAGER_ROLES


class Invitation(ExpiringModel, TimestampedModel):
    """A single-use, expiring invitation to join an organisation; the token is stored as a keyed digest."""

    organization = organization_field("invitations")
    email = models.EmailField(_("email address"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.MEMBER)
    invited_by = actor_field(_("invited by"), blank=False)
    token_digest = models.CharField(_("token digest"), max_length=64, unique=True, editable=False)
    pepper_id = models.CharField(_("pepper id"), max_length=16, editable=False)
    accepted_at = models.DateTimeField(_("accepted"), null=True, blank=True)
    accepted_by = actor_field(_("accepted by"))
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "email"],
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_email_and_org",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.organization}"

    @property
    def is_open(self) -> bool:
        """Return whether the invitation can still be accepted."""
        return self.accepted_at is None and self.revoked_at is None and not self.is_expired

    @property
    def state(self) -> str:
        """Return a word for the invitation's state."""
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "pending"


class AuditEvent(models.Model):
    """One change to a credential, owner, approval, membership or signing key. Never a secret."""

    occurred_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor = actor_field(_("actor"))
    actor_label = models.CharField(
        _("actor label"), max_length=255, blank=True, help_text=_("Who acted, kept when the user is deleted.")
    )
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name=_("organisation"),
    )
    action = models.CharField(_("action"), max_length=100, db_index=True)
    target_type = models.CharField(_("target type"), max_length=100, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_label = models.CharField(_("target"), max_length=255, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=255, blank=True)
    extra = models.JSONField(_("extra data"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-occurred_at"], name="audit_org_time"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label or 'system'}"
