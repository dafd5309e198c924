"""Forms of the federated identity pages: add a trust, test a token."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from credentials.names import CredentialNameField
from portal.submissions import OnceForm
from tokens.clients.forms import PublicKeyTextarea
from tokens.models import (
    MAX_FEDERATED_TOKEN_AGE,
    MIN_FEDERATED_TOKEN_AGE,
    FederatedIdentity,
)


class FederatedIdentityForm(OnceForm):
    """A trust of an external issuer, as a preset fills it in (tokens.federation.trust.PRESETS).

    Sent once (`OnceForm`): a double click or a reload adds no second, identical trust that would
    keep accepting the same tokens once the trust shown is removed.
    """

    preset = forms.ChoiceField(
        label=_("Platform"), choices=FederatedIdentity.Preset.choices, widget=forms.HiddenInput
    )
    name = CredentialNameField(
        label=_("Name"), max_length=255, required=False, help_text=_("Default: the subject.")
    )
    issuer = forms.CharField(
        label=_("Issuer"),
        max_length=255,
        help_text=_("The external tokens' `iss`, exactly (https). Never a wildcard."),
    )
    subject = forms.CharField(
        label=_("Subject"),
        max_length=255,
        help_text=_("The `sub` to accept: exact, or with `*` wildcards (in the subject only)."),
    )
    conditions = forms.CharField(
        label=_("Conditions"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=_(
            "One NAME=VALUE per line; the same name twice accepts either value. Every condition must hold."
        ),
    )
    audience = forms.CharField(
        label=_("Audience"),
        max_length=255,
        required=False,
        help_text=_("The `aud` the token must carry. Default: this portal's issuer URL."),
    )
    max_token_age = forms.IntegerField(
        label=_("Maximum token age (seconds)"),
        min_value=MIN_FEDERATED_TOKEN_AGE,
        max_value=MAX_FEDERATED_TOKEN_AGE,
        help_text=_("How long after it was issued (`iat`) a token is still accepted."),
    )
    jwks = forms.CharField(
        label=_("Static JWKS or SPIFFE trust bundle (optional)"),
        required=False,
        # A private JWK pasted by mistake is refused and never shown back (as for private_key_jwt).
        widget=PublicKeyTextarea(attrs={"rows": 4, "spellcheck": "false", "autocomplete": "off"}),
        help_text=_("Public keys only. Leave empty to fetch the issuer's keys by OIDC discovery."),
    )

    def clean_conditions(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["conditions"].splitlines() if line.strip()]


class NeverEchoedTextarea(forms.Textarea):
    """A textarea that comes back empty whatever was posted (a pasted token, say)."""

    def format_value(self, value):
        return None


class TokenTestForm(forms.Form):
    """An external token pasted to see which checks it passes; never stored, never logged."""

    token = forms.CharField(
        label=_("External token"),
        widget=NeverEchoedTextarea(attrs={"rows": 6, "spellcheck": "false", "autocomplete": "off"}),
        help_text=_("Paste the platform's token (a JWT). Nothing is issued, stored or logged."),
    )
