"""M2M applications with their secrets, public keys and federated identities; the resource-server catalogue;
JWT signing keys; revoked tokens."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import AbstractApplication, ApplicationManager

from credentials.governance.models import (
    CredentialStatus,
    GovernedCredential,
    status_constraints,
)
from portal.infra.crypto import random_base62
from portal.models import ExpiringModel, Organization, TimestampedModel, actor_field, organization_field

CLIENT_ID_PREFIX = "m2m_"
MIN_TOKEN_LIFETIME = 300
MAX_TOKEN_LIFETIME = 86400
DEFAULT_TOKEN_LIFETIME = 900
#: Upper bound of an issuance quota (tokens per hour or per day).
MAX_TOKEN_QUOTA = 100_000_000


def _owner_field(related_name: str, help_text: str) -> models.ForeignKey:
    """Return the accountable member of a governed credential (a user who owns one cannot be deleted)."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name=related_name,
        verbose_name=_("owner"),
        help_text=help_text,
    )


#: Sent after a queryset `update()` changed rows a token request reads (`M2MApplication`,
#: `ClientSecret`), with `client_ids`: the applications concerned. `update()` sends no
#: `post_save`; `tokens.clients.snapshot` listens to both, so every write drops the shared
#: client snapshot (docs/performance.md, "Third pass").
client_rows_updated = Signal()

#: Fields whose change alters nothing a token request decides with: a secret's last use.
_UNWATCHED_UPDATES = frozenset({"last_used_at"})


class _ClientRowsQuerySet(models.QuerySet):
    """A queryset whose `update()` says which applications it changed (`client_rows_updated`)."""

    #: The lookup from a row to its application's client id.
    client_id_path = "client_id"

    def update(self, **kwargs):
        if kwargs.keys() <= _UNWATCHED_UPDATES:
            return super().update(**kwargs)
        client_ids = set(self.values_list(self.client_id_path, flat=True))
        rows = super().update(**kwargs)
        if client_ids:
            client_rows_updated.send(sender=self.model, client_ids=client_ids)
        return rows

    update.alters_data = True


def generate_client_id() -> str:
    """Return a random, non-secret client id such as `m2m_4kQ…` (24 base62 characters)."""
    return CLIENT_ID_PREFIX + random_base62(24)


class M2MApplication(GovernedCredential, AbstractApplication):
    """An OAuth 2.0 confidential client using the client-credentials grant (DOT's swappable model).

    DOT's own `client_secret` column is never used: secrets live in `ClientSecret` as keyed
    digests, several per application, so they can be rotated with overlap.
    """

    class AuthMethod(models.TextChoices):
        # RFC 7591 §2 names. A secret application accepts client_secret_post as well.
        CLIENT_SECRET = "client_secret_basic", _("Client secret")
        PRIVATE_KEY_JWT = "private_key_jwt", _("Private key JWT (no secret)")

    Status = CredentialStatus  # every governed kind shares the one status enum

    client_id = models.CharField(
        _("client ID"), max_length=255, unique=True, default=generate_client_id, editable=False
    )
    # Overridden so DOT never generates or stores a plaintext secret on this row.
    client_secret = models.CharField(_("unused"), max_length=255, blank=True, default="", editable=False)
    hash_client_secret = models.BooleanField(default=False, editable=False)
    client_type = models.CharField(
        max_length=32,
        choices=AbstractApplication.CLIENT_TYPES,
        default=AbstractApplication.CLIENT_CONFIDENTIAL,
        editable=False,
        verbose_name=_("client type"),
    )
    authorization_grant_type = models.CharField(
        max_length=44,
        choices=AbstractApplication.GRANT_TYPES,
        default=AbstractApplication.GRANT_CLIENT_CREDENTIALS,
        editable=False,
        verbose_name=_("authorization grant type"),
    )

    organization = organization_field("m2m_applications")
    owner = _owner_field("owned_m2m_applications", _("The member accountable for this application."))
    description = models.CharField(_("description"), max_length=255, blank=True)
    allowed_scopes = models.ManyToManyField(
        "credentials.Scope", blank=True, related_name="m2m_applications", verbose_name=_("allowed scopes")
    )
    allowed_audiences = models.JSONField(
        _("allowed audiences"),
        default=list,
        blank=True,
        help_text=_("Resource indicators (RFC 8707) this application may request tokens for."),
    )
    token_lifetime = models.PositiveIntegerField(
        _("token lifetime (seconds)"),
        default=DEFAULT_TOKEN_LIFETIME,
        validators=[MinValueValidator(MIN_TOKEN_LIFETIME), MaxValueValidator(MAX_TOKEN_LIFETIME)],
    )
    token_endpoint_auth_method = models.CharField(
        _("client authentication"),
        max_length=32,
        choices=AuthMethod.choices,
        default=AuthMethod.CLIENT_SECRET,
        editable=False,
        help_text=_(
            "Client secret, or signed JWT assertions (RFC 7523) checked against registered public keys. "
            "An application uses one or the other, never both."
        ),
    )
    is_resource_server = models.BooleanField(
        _("platform resource server"),
        default=False,
        help_text=_("Staff only: may introspect tokens of every organisation."),
    )
    environment = models.CharField(
        _("environment"),
        max_length=8,
        choices=[("live", _("Live")), ("test", _("Test"))],
        blank=True,
        help_text=_(
            "Live or test, as the API key it was moved from; empty: not set. Its tokens carry it "
            "as the `environment` claim, like tokens exchanged for keys."
        ),
    )

    class QuotaMode(models.TextChoices):
        ENFORCE = "enforce", _("Enforce (429 slow_down when used up)")
        LOG_ONLY = "log_only", _("Log only (issue, log a warning, count it)")

    # Token issuance quotas (docs/m2m.md#limits): empty = no quota of that length. An
    # application with neither keeps the global PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE only.
    tokens_per_hour = models.PositiveIntegerField(
        _("tokens per hour"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TOKEN_QUOTA)],
        help_text=_("Tokens this application may be issued per clock hour (UTC); empty: no hourly quota."),
    )
    tokens_per_day = models.PositiveIntegerField(
        _("tokens per day"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TOKEN_QUOTA)],
        help_text=_("Tokens this application may be issued per UTC day; empty: no daily quota."),
    )
    token_quota_mode = models.CharField(
        _("quota mode"),
        max_length=8,
        choices=QuotaMode.choices,
        default=QuotaMode.ENFORCE,
    )
    moved_from_key = models.OneToOneField(
        "credentials.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="moved_to_application",
        verbose_name=_("moved from API key"),
        help_text=_("The API key this application replaces; a key is moved at most once."),
        editable=False,
    )
    may_exchange_api_keys = models.BooleanField(
        _("may exchange API keys"),
        default=False,
        help_text=_(
            "Staff only: a trusted gateway that may trade customers' API keys for short-lived access"
            " tokens (RFC 8693 token exchange), for every organisation."
        ),
    )
    may_report_client_ip = models.BooleanField(
        _("may report client IPs"),
        default=False,
        help_text=_(
            "Staff only: a gateway trusted to report, as `client_ip` at token exchange, the address"
            " a customer's API key was presented from; the key's IP allowlist is checked against"
            " it. Without this mark the key's allowlist is checked against the gateway's own address."
        ),
    )

    objects = ApplicationManager.from_queryset(_ClientRowsQuerySet)()

    class Meta:
        verbose_name = _("M2M application")
        verbose_name_plural = _("M2M applications")
        ordering = ["name"]
        # The inventory pages through both kinds newest first, per organisation.
        indexes = [models.Index(fields=["organization", "-created"], name="m2m_app_org_created")]
        constraints = [
            models.CheckConstraint(
                condition=Q(token_lifetime__gte=MIN_TOKEN_LIFETIME, token_lifetime__lte=MAX_TOKEN_LIFETIME),
                name="m2m_app_token_lifetime_range",
            ),
            models.CheckConstraint(
                condition=Q(token_endpoint_auth_method__in=["client_secret_basic", "private_key_jwt"]),
                name="m2m_app_auth_method_valid",
            ),
            *status_constraints("m2m_app"),
            models.CheckConstraint(
                condition=Q(environment__in=["", "live", "test"]), name="m2m_app_environment_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.client_id

    @property
    def is_active(self) -> bool:
        """Return whether the application may obtain tokens."""
        return self.status == self.Status.ACTIVE

    def is_usable(self, request) -> bool:
        """Refuse pending, suspended, denied and revoked applications at the token endpoint (DOT's hook)."""
        return self.is_active

    @property
    def state(self) -> str:
        """Return the status shown to people (applications have no expiry of their own)."""
        return self.status

    @property
    def uses_private_key_jwt(self) -> bool:
        """Return whether the application authenticates with key-signed assertions instead of a secret."""
        return self.token_endpoint_auth_method == self.AuthMethod.PRIVATE_KEY_JWT

    @property
    def exchange_token_lifetime(self) -> int:
        """Return the lifetime of tokens this gateway gets by exchange (RFC 8693): the shorter of its
        own and PORTAL_EXCHANGE_TOKEN_LIFETIME_SECONDS (`tokens.protocol.exchange`)."""
        return max(1, min(self.token_lifetime, settings.PORTAL_EXCHANGE_TOKEN_LIFETIME_SECONDS))

    @property
    def audiences(self) -> list[str]:
        """Return the audiences a token may carry: the portal's default one, then the allowed ones."""
        return [settings.PORTAL_DEFAULT_AUDIENCE, *(a for a in self.allowed_audiences if a)]


class ResourceServerQuerySet(models.QuerySet):
    def available_to(self, organization: Organization) -> models.QuerySet:
        """Keep the active resource servers the organisation's applications may name as audience."""
        restricted = ResourceServer.organizations.through.objects.filter(resourceserver=models.OuterRef("pk"))
        return self.filter(is_active=True).filter(
            ~models.Exists(restricted) | models.Exists(restricted.filter(organization=organization))
        )


class ResourceServer(TimestampedModel):
    """An API that accepts this portal's access tokens: an audience applications may choose (RFC 8707).

    Staff keep the catalogue in the admin, as Auth0 does with its APIs. `PORTAL_DEFAULT_AUDIENCE`
    (the portal's own API) is always available; every other audience an application names must
    be an active entry here, open to the application's organisation.
    """

    identifier = models.CharField(
        _("identifier"),
        max_length=2000,
        unique=True,
        help_text=_(
            "The audience (`aud`) of its tokens and the `resource` clients ask for: an absolute URI "
            "without fragment, e.g. https://orders.example.com/api. It cannot change later."
        ),
    )
    name = models.CharField(_("name"), max_length=255)
    description = models.CharField(_("description"), max_length=500, blank=True)
    scopes = models.ManyToManyField(
        "credentials.Scope",
        blank=True,
        related_name="resource_servers",
        verbose_name=_("accepted scopes"),
        help_text=_(
            "The scopes its tokens may carry; a token for it holds only these. "
            "None selected: any scope of the catalogue."
        ),
    )
    organizations = models.ManyToManyField(
        Organization,
        blank=True,
        related_name="+",
        verbose_name=_("organisations"),
        help_text=_(
            "Only these organisations' applications may request tokens for it (a tenant's own API). "
            "None selected: every organisation (a platform API)."
        ),
    )
    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_("An inactive resource server is offered to nobody, and no token is issued for it."),
    )

    objects = ResourceServerQuerySet.as_manager()

    class Meta:
        verbose_name = _("resource server")
        verbose_name_plural = _("resource servers")
        ordering = ["name", "identifier"]

    def __str__(self) -> str:
        return f"{self.name} ({self.identifier})" if self.name != self.identifier else self.identifier


class ClientCredentialQuerySet(_ClientRowsQuerySet):
    client_id_path = "application__client_id"

    def live(self, now=None) -> models.QuerySet:
        """Keep the rows that still authenticate: not revoked and not past their expiry."""
        return self.filter(revoked_at__isnull=True).exclude(expires_at__lte=now or timezone.now())


class ClientCredential(ExpiringModel, TimestampedModel):
    """What a client secret and a client public key share: who added it, its last use, revocation.

    `expires_at` is the end of its lifetime: the organisation's maximum, the expiry chosen for a
    key, or the end of a rotation's overlap. `retired_at` says a rotation replaced it (and set
    that overlap); `revoked_at` stops it (and every token minted with it) at once.
    """

    created_by = actor_field(_("created by"))
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    retired_at = models.DateTimeField(
        _("retired"),
        null=True,
        blank=True,
        help_text=_("When a rotation replaced it; it keeps working until its expiry (the overlap)."),
    )
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    objects = ClientCredentialQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_live(self) -> bool:
        """Return whether it still authenticates its application."""
        return self.revoked_at is None and not self.is_expired

    @property
    def state(self) -> str:
        """Return a word for the credential's state: `expiring` only in a rotation's overlap.

        A credential that merely has an expiry (a policy maximum, a key's chosen expiry, the
        first secret of an application moved from an expiring key) is `active` until then.
        """
        if self.revoked_at:
            return "revoked"
        if self.is_expired:
            return "expired"
        if self.retired_at and self.expires_at:
            return "expiring"
        return "active"


class ClientSecret(ClientCredential):
    """One secret of an application, stored only as a keyed HMAC digest under a versioned pepper."""

    application = models.ForeignKey(
        M2MApplication, on_delete=models.CASCADE, related_name="secrets", verbose_name=_("application")
    )
    public_id = models.CharField(
        _("secret id"),
        max_length=16,
        unique=True,
        editable=False,
        help_text=_("Non-secret identifier carried by tokens as the `csid` claim."),
    )
    hint = models.CharField(_("hint"), max_length=16, editable=False)
    digest = models.CharField(_("digest"), max_length=64, editable=False)
    pepper_id = models.CharField(_("pepper id"), max_length=16, editable=False)

    class Meta:
        verbose_name = _("client secret")
        verbose_name_plural = _("client secrets")
        ordering = ["-created_at", "-id"]
        # Leak reports find a secret by its digest alone (no client id comes with it).
        indexes = [models.Index(fields=["digest"], name="client_secret_digest")]

    def __str__(self) -> str:
        return f"{self.hint}…"


class ClientPublicKey(ClientCredential):
    """A public key that signs the application's client assertions (RFC 7523 §2.2, `private_key_jwt`).

    Only public members are stored; the private key never reaches the portal. Like a client
    secret, a key can be given an `expires_at` (rotation with overlap) or revoked at once,
    which also rejects the tokens it minted (their `ckid` claim names it).
    """

    class Algorithm(models.TextChoices):
        RS256 = "RS256", "RS256"
        PS256 = "PS256", "PS256"
        ES256 = "ES256", "ES256"
        ES384 = "ES384", "ES384"
        EDDSA = "EdDSA", "EdDSA"

    application = models.ForeignKey(
        M2MApplication, on_delete=models.CASCADE, related_name="public_keys", verbose_name=_("application")
    )
    kid = models.CharField(
        _("key id"), max_length=64, editable=False, help_text=_("RFC 7638 JWK thumbprint (SHA-256).")
    )
    algorithm = models.CharField(_("algorithm"), max_length=8, choices=Algorithm.choices, editable=False)
    public_jwk = models.JSONField(_("public JWK"), editable=False)

    class Meta:
        verbose_name = _("client public key")
        verbose_name_plural = _("client public keys")
        ordering = ["-created_at", "-id"]
        constraints = [
            # A revoked key stays registered, so the same key pair cannot come back.
            models.UniqueConstraint(fields=["application", "kid"], name="client_public_key_unique_kid"),
            models.CheckConstraint(
                condition=Q(algorithm__in=["RS256", "PS256", "ES256", "ES384", "EdDSA"]),
                name="client_public_key_algorithm_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.algorithm} {self.kid[:12]}…"

    @property
    def short_kid(self) -> str:
        """Return the first characters of the kid, enough to tell keys apart on a page."""
        return self.kid[:12]


FEDERATED_ID_PREFIX = "fid_"
MIN_FEDERATED_TOKEN_AGE = 60
MAX_FEDERATED_TOKEN_AGE = 86400
#: Kubernetes projected service-account tokens live an hour by default; CI tokens far less.
DEFAULT_FEDERATED_TOKEN_AGE = 3600
#: The live trusts one application may have for one issuer (docs/m2m.md): the token endpoint
#: tries at most these many (the oldest first), and `federated_identity_create` refuses one more.
MAX_TRUSTS_PER_ISSUER = 20


def generate_federated_id() -> str:
    """Return a random, non-secret id such as `fid_4kQ…` (tokens carry it in their `fed` claim)."""
    return FEDERATED_ID_PREFIX + random_base62(16)


class FederatedIdentity(GovernedCredential, TimestampedModel):
    """A trust in one external issuer: its tokens authenticate the application, with no stored secret.

    A CI job or a pod presents the short-lived token its platform gave it (GitHub Actions,
    GitLab CI, Kubernetes, SPIFFE) as a client assertion (RFC 7523 §2.2); it is accepted when
    it is signed by the issuer's keys, names `audience`, matches `subject` (exact, or with `*`
    wildcards) and every condition, and is at most `max_token_age` seconds old. A governed
    credential of its own (`tokens.federation.kind` registers the kind): an owner, approval,
    review, suspension; suspending or revoking it also rejects the tokens it minted.
    """

    class Preset(models.TextChoices):
        CUSTOM = "custom", _("Custom issuer")
        GITHUB_ACTIONS = "github_actions", _("GitHub Actions")
        GITLAB_CI = "gitlab_ci", _("GitLab CI")
        KUBERNETES = "kubernetes", _("Kubernetes")
        SPIFFE = "spiffe", _("SPIFFE")

    Status = CredentialStatus  # every governed kind shares the one status enum

    public_id = models.CharField(
        _("federated identity id"),
        max_length=32,
        unique=True,
        default=generate_federated_id,
        editable=False,
        help_text=_("Non-secret identifier carried by tokens in the `fed` claim."),
    )
    organization = organization_field("federated_identities")
    application = models.ForeignKey(
        M2MApplication,
        on_delete=models.CASCADE,
        related_name="federated_identities",
        verbose_name=_("application"),
    )
    owner = _owner_field("owned_federated_identities", _("The member accountable for this trust."))
    name = models.CharField(_("name"), max_length=255)
    preset = models.CharField(_("preset"), max_length=16, choices=Preset.choices, default=Preset.CUSTOM)
    issuer = models.CharField(
        _("issuer"),
        max_length=255,
        help_text=_("The external tokens' `iss`, exactly; its keys come from OIDC discovery unless pasted."),
    )
    jwks = models.JSONField(
        _("static JWKS"),
        null=True,
        blank=True,
        help_text=_("A pasted JWKS or SPIFFE trust bundle (public keys only), used instead of discovery."),
    )
    audience = models.CharField(
        _("audience"), max_length=255, help_text=_("The `aud` the external token must carry.")
    )
    subject = models.CharField(
        _("subject"), max_length=255, help_text=_("The `sub` to accept, exactly or with `*` wildcards.")
    )
    conditions = models.JSONField(
        _("conditions"),
        default=dict,
        blank=True,
        help_text=_("Claim name -> accepted values; every condition must hold."),
    )
    max_token_age = models.PositiveIntegerField(
        _("maximum token age (seconds)"),
        default=DEFAULT_FEDERATED_TOKEN_AGE,
        validators=[MinValueValidator(MIN_FEDERATED_TOKEN_AGE), MaxValueValidator(MAX_FEDERATED_TOKEN_AGE)],
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("federated identity")
        verbose_name_plural = _("federated identities")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="federated_id_org_created"),
            # The token endpoint finds the trusts of a presented token by client and issuer.
            models.Index(fields=["application", "issuer"], name="federated_id_app_issuer"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    max_token_age__gte=MIN_FEDERATED_TOKEN_AGE, max_token_age__lte=MAX_FEDERATED_TOKEN_AGE
                ),
                name="federated_id_max_token_age_range",
            ),
            models.CheckConstraint(
                condition=Q(preset__in=["custom", "github_actions", "gitlab_ci", "kubernetes", "spiffe"]),
                name="federated_id_preset_valid",
            ),
            *status_constraints("federated_id"),
        ]

    def __str__(self) -> str:
        return self.name or self.public_id

    @property
    def is_active(self) -> bool:
        """Return whether its tokens authenticate the application."""
        return self.status == self.Status.ACTIVE

    @property
    def state(self) -> str:
        """Return the status shown to people."""
        return self.status


class SigningKey(TimestampedModel):
    """A JWT signing key pair; the private key is Fernet-encrypted with PORTAL_SIGNING_KEY_ENCRYPTION_KEY."""

    class Algorithm(models.TextChoices):
        RS256 = "RS256", "RS256"
        ES256 = "ES256", "ES256"

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        # Staged: in the JWKS so that verifiers which cache it know the key before any token
        # carries its kid; it never signs. `signing_key_rotate` promotes it to active.
        NEXT = "next", _("Published, next")
        RETIRED = "retired", _("Retired")

    kid = models.CharField(
        _("key id"), max_length=64, unique=True, editable=False, help_text=_("RFC 7638 JWK thumbprint.")
    )
    algorithm = models.CharField(_("algorithm"), max_length=8, choices=Algorithm.choices, editable=False)
    encrypted_private_key = models.BinaryField(_("encrypted private key"), editable=False)
    public_jwk = models.JSONField(_("public JWK"), editable=False)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)
    publish_until = models.DateTimeField(
        _("published until"),
        null=True,
        blank=True,
        help_text=_("A retired key stays in the JWKS until the last token it signed has expired."),
    )

    class Meta:
        verbose_name = _("signing key")
        verbose_name_plural = _("signing keys")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="signing_key_one_active"
            ),
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="next"), name="signing_key_one_next"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.algorithm} {self.kid[:12]}… ({self.status})"

    @property
    def is_published(self) -> bool:
        """Return whether the key belongs in the JWKS: the active and the staged key, and retired
        ones until `publish_until`."""
        return self.status in (self.Status.ACTIVE, self.Status.NEXT) or (
            self.publish_until is not None and self.publish_until > timezone.now()
        )


class RevokedToken(models.Model):
    """A revoked access token, by `jti`, kept until the token would have expired anyway."""

    jti = models.CharField(_("token id"), max_length=64, unique=True)
    application = models.ForeignKey(
        M2MApplication, on_delete=models.CASCADE, related_name="+", verbose_name=_("application")
    )
    expires_at = models.DateTimeField(_("expires"), db_index=True)
    revoked_at = models.DateTimeField(_("revoked"), default=timezone.now)

    class Meta:
        verbose_name = _("revoked token")
        verbose_name_plural = _("revoked tokens")

    def __str__(self) -> str:
        return self.jti
