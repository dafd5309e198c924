"""Dashboard forms for M2M applications."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from credentials.forms import OverlapDefaultMixin, OverlapHoursField, RuntimePolicyForm
from credentials.governance.forms import JustificationField
from credentials.models import Scope
from credentials.names import CredentialNameField
from credentials.overlap import overlap_choices
from credentials.selectors import scope_catalogue
from portal.models import User
from portal.submissions import OnceForm
from tokens.catalogue import check_audiences, resource_servers_for
from tokens.clients.public_keys import looks_private
from tokens.clients.quota import FIELDS, parse_token_quota
from tokens.models import (
    DEFAULT_TOKEN_LIFETIME,
    MAX_TOKEN_LIFETIME,
    MIN_TOKEN_LIFETIME,
    ClientPublicKey,
    M2MApplication,
)


class PublicKeyTextarea(forms.Textarea):
    """A textarea that never renders pasted private key material back into the page."""

    def format_value(self, value):
        return "" if value and looks_private(str(value)) else super().format_value(value)


PUBLIC_KEY_HELP = _(
    "A public JWK (JSON) or a PEM block (-----BEGIN PUBLIC KEY-----). Never the private key: it stays "
    "in your service. RSA (2048 bits or more), EC P-256/P-384 or Ed25519."
)


class AudienceChoiceField(forms.MultipleChoiceField):
    """Audiences from the resource-server catalogue; one per value or several per line, as scripts post."""

    def to_python(self, value) -> list[str]:
        values = [value] if isinstance(value, str) else list(value or [])
        return [audience for item in values for audience in str(item).split()]

    def validate(self, value) -> None:
        # Refused values are named, with the choices, by tokens.catalogue.check_audiences in clean.
        forms.Field.validate(self, value)


class TokenQuotaForm(forms.Form):
    """The token issuance quota as people type it: two numbers (empty: none) and a mode (clients.quota)."""

    tokens_per_hour = forms.CharField(
        label=_("Tokens per hour"),
        required=False,
        max_length=12,
        help_text=_("Per clock hour (UTC). Empty: no hourly quota."),
    )
    tokens_per_day = forms.CharField(
        label=_("Tokens per day"),
        required=False,
        max_length=12,
        help_text=_(
            "Per UTC day, at least the hourly quota. Empty: no daily quota. With neither, the "
            "portal-wide per-minute limit applies."
        ),
    )
    token_quota_mode = forms.ChoiceField(
        label=_("When the quota is used up"),
        choices=M2MApplication.QuotaMode.choices,
        initial=M2MApplication.QuotaMode.ENFORCE,
        required=False,
    )

    def clean(self):
        data = super().clean()
        try:
            data["token_quota"] = parse_token_quota(
                data.get("tokens_per_hour", ""),
                data.get("tokens_per_day", ""),
                data.get("token_quota_mode", ""),
            )
        except ValidationError as exc:
            self._add_quota_errors(exc)
        return data

    def _add_quota_errors(self, exc: ValidationError) -> None:
        # Each of the parser's problems goes on the field it is about, named as the page labels it
        # ("Tokens per hour must be …"), where the REST answer says "per_hour must be …".
        names = {key: str(self.fields[field].label).lower() for key, field in FIELDS.items()}
        for error in exc.error_dict["token_quota"]:
            params = error.params or {}
            if "key" not in params:  # not about one key (the REST body's shape): form-wide
                self.add_error(None, error)
                continue
            text = capfirst(error.message % {**params, **names, "none": "empty"})
            self.add_error(FIELDS[params["key"]], forms.ValidationError(text, code="token_quota"))

    @classmethod
    def initial_for(cls, application: M2MApplication) -> dict:
        return {
            "tokens_per_hour": application.tokens_per_hour or "",
            "tokens_per_day": application.tokens_per_day or "",
            "token_quota_mode": application.token_quota_mode,
        }


class M2MAppCreateForm(OnceForm, TokenQuotaForm, RuntimePolicyForm):
    """Name, owner, scopes, audiences and token lifetime of a new application."""

    name = CredentialNameField(label=_("Name"), max_length=255)
    description = forms.CharField(label=_("Description"), max_length=255, required=False)
    owner = forms.ModelChoiceField(
        label=_("Owner"),
        queryset=User.objects.none(),
        help_text=_("The member accountable for this application and its secrets."),
    )
    scopes = forms.ModelMultipleChoiceField(
        label=_("Allowed scopes"),
        queryset=Scope.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        to_field_name="name",
        help_text=_("A token request without a scope gets all of them."),
    )
    audiences = AudienceChoiceField(
        label=_("Allowed audiences"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "Other APIs (RFC 8707 resource indicators) from the catalogue staff keep. Tokens are for "
            "the portal's API unless the client asks for one of these."
        ),
    )
    token_lifetime = forms.IntegerField(
        label=_("Token lifetime (seconds)"),
        min_value=MIN_TOKEN_LIFETIME,
        max_value=MAX_TOKEN_LIFETIME,
        initial=DEFAULT_TOKEN_LIFETIME,
        help_text=_("From 300 (5 minutes) to 86400 (24 hours). Default 900 (15 minutes)."),
    )
    auth_method = forms.ChoiceField(
        label=_("Client authentication"),
        choices=M2MApplication.AuthMethod.choices,
        initial=M2MApplication.AuthMethod.CLIENT_SECRET,
        widget=forms.RadioSelect,
        help_text=_(
            "Client secret: the service sends a secret shown once. Private key JWT (RFC 7523): the service "
            "signs a short-lived assertion with its own private key; the portal only holds the public key, "
            "so there is no secret to leak."
        ),
    )
    public_key = forms.CharField(
        label=_("Public key (private key JWT only)"),
        required=False,
        widget=PublicKeyTextarea(attrs={"rows": 6, "spellcheck": "false", "autocomplete": "off"}),
        help_text=PUBLIC_KEY_HELP,
    )

    def __init__(
        self, *args, organization, user, can_choose_owner: bool, owner_role: str | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        # The optional quota after what the application is (the name first, for keyboard and screen
        # readers too): the base classes' fields come first otherwise.
        for name in ("tokens_per_hour", "tokens_per_day", "token_quota_mode"):
            self.fields[name] = self.fields.pop(name)
        if self.is_bound and not self.data.get("auth_method"):
            # A form posted without the choice (older pages, scripts) means a client secret.
            self.data = self.data.copy()
            self.data["auth_method"] = M2MApplication.AuthMethod.CLIENT_SECRET
        self.organization = organization
        self.fields["audiences"].choices = [
            (
                server.identifier,
                f"{server.name} — {server.identifier}"
                if server.name != server.identifier
                else server.identifier,
            )
            for server in resource_servers_for(organization)
        ]
        if not self.fields["audiences"].choices:
            self.fields["audiences"].help_text = _(
                "Tokens are for the portal's API. Staff have registered no other API for your organisation."
            )
        owners = User.objects.filter(memberships__organization=organization).order_by("email")
        if not can_choose_owner:
            owners = owners.filter(pk=user.pk)
        self.fields["owner"].queryset = owners
        self.fields["owner"].initial = user.pk
        # Only the scopes a member's application may hold, for a member creating their own.
        self.fields["scopes"].queryset = scope_catalogue(for_role=owner_role)
        self.fields["owner"].label_from_instance = lambda u: u.email
        # Say what each scope grants, as the API key form does.
        self.fields["scopes"].label_from_instance = lambda s: (
            f"{s.name} — {s.description}" if s.description else s.name
        )

    def clean_audiences(self) -> list[str]:
        try:
            return check_audiences(organization=self.organization, audiences=self.cleaned_data["audiences"])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["audiences"]) from None

    def clean(self):
        data = super().clean()
        if (
            data.get("public_key", "").strip()
            and data.get("auth_method") != M2MApplication.AuthMethod.PRIVATE_KEY_JWT
        ):
            self.add_error("public_key", _("Only a private key JWT application takes a public key."))
        return data


class PublicKeyAddForm(OnceForm):
    """A public key to register, its algorithm, and how long the current keys keep working."""

    public_key = forms.CharField(
        label=_("Public key"),
        widget=PublicKeyTextarea(attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off"}),
        help_text=PUBLIC_KEY_HELP,
    )
    algorithm = forms.ChoiceField(
        label=_("Algorithm"),
        required=False,
        choices=[("", _("From the key (RS256 for RSA)")), *ClientPublicKey.Algorithm.choices],
        help_text=_("The `alg` your service signs with. Only this algorithm is accepted for this key."),
    )
    overlap_hours = forms.TypedChoiceField(
        label=_("Keep the current key working for"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", _("Until you revoke it (keep both)")), *overlap_choices("key")],
        help_text=_("Rotation: how long the key in use now keeps working beside the new one."),
    )


class SecretRotateForm(OverlapDefaultMixin, OnceForm):
    """How long the current secrets keep working after a rotation (the organisation's default preselected)."""

    overlap_hours = OverlapHoursField(
        old="secret",
        label=_("Keep the current secret working for"),
        help_text=_("Long enough to deploy the new secret everywhere."),
    )


class ApiKeyMoveForm(forms.Form):
    """Move an API key to a new M2M application: its name, and why when approvers decide."""

    name = CredentialNameField(label=_("Application name"), max_length=100)

    def __init__(self, *args, needs_approval: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if needs_approval:
            self.fields["justification"] = JustificationField(
                label=_("Justification (for the approvers)"), required=False
            )
