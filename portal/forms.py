"""Forms for login, security keys, members and invitations."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.forms import ChangePasswordForm, LoginForm
from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.webauthn.forms import (
    AddWebAuthnForm,
    AuthenticateWebAuthnForm,
    LoginWebAuthnForm,
    ReauthenticateWebAuthnForm,
)
from django import forms
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from portal.models import Organization, Role, User
from portal.selectors import audit_actors
from portal.services.organizations import canonical_invitation_email


class PortalLoginForm(LoginForm):
    """allauth's email login with the portal's labels (its messages are PortalAccountAdapter's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["login"].label = _("Email")
        self.fields["login"].widget.attrs.update({"autofocus": True, "autocomplete": "email"})
        self.fields["login"].widget.attrs.pop("placeholder", None)
        self.fields["password"].widget.attrs.pop("placeholder", None)
        # The page has its own "Forgotten your password?" link, after the button.
        self.fields["password"].help_text = ""


class PortalChangePasswordForm(ChangePasswordForm):
    """allauth's change-password form, its current password checked as at step-up."""

    def clean_oldpassword(self) -> str:
        # PortalAccountAdapter.reauthenticate: a wrong password spends the account's failed-sign-in
        # budget and is audited as a failed step-up, so a stolen session cannot guess here either.
        adapter = get_account_adapter()
        password = self.cleaned_data.get("oldpassword", "")
        if not adapter.reauthenticate(self.user, password):
            raise adapter.validation_error("enter_current_password")
        return password


#: What python-fido2 raises on a WebAuthn credential of the wrong shape (a missing member, a
#: value of the wrong type, bytes too short to unpack); allauth turns only some into a form error.
MALFORMED_CREDENTIAL_ERRORS = (LookupError, AttributeError, TypeError, ValueError, struct.error)


@contextmanager
def _malformed_credential_refused() -> Iterator[None]:
    """Answer a credential python-fido2 cannot parse as allauth answers a wrong one: "incorrect code"."""
    try:
        yield
    except MALFORMED_CREDENTIAL_ERRORS as exc:
        raise get_mfa_adapter().validation_error("incorrect_code") from exc


class PortalAddWebAuthnForm(AddWebAuthnForm):
    """allauth's form to add a security key; a malformed credential is a form error, not a 500."""

    def clean(self) -> dict:
        with _malformed_credential_refused():
            return super().clean()


class _CredentialParsedSafely:
    """Refuse a malformed assertion in `clean_credential` (the sign-in, second-factor and step-up forms)."""

    def clean_credential(self):
        with _malformed_credential_refused():
            return super().clean_credential()


class PortalAuthenticateWebAuthnForm(_CredentialParsedSafely, AuthenticateWebAuthnForm):
    """The security key as the second factor at sign-in."""


class PortalLoginWebAuthnForm(_CredentialParsedSafely, LoginWebAuthnForm):
    """Passkey sign-in: anyone can post to it."""


class PortalReauthenticateWebAuthnForm(_CredentialParsedSafely, ReauthenticateWebAuthnForm):
    """The security key at step-up."""


class InvitationForm(forms.Form):
    # Invitation.email holds 254 characters (forms.EmailField alone would accept 320).
    email = forms.EmailField(
        label=_("Email address"), max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "off"})
    )
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.MEMBER)

    def clean_email(self) -> str:
        # The address as it is stored, compared and mailed (invisible characters, look-alike
        # letters and domains the mail layer cannot encode are refused here, as a field error,
        # before anything is committed); the service checks again for its other callers.
        return canonical_invitation_email(self.cleaned_data["email"])


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class AcceptInvitationSignupForm(forms.Form):
    """Create an account for an invited email address."""

    full_name = forms.CharField(
        label=_("Full name"), max_length=150, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    password1 = forms.CharField(
        label=_("Password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label=_("Repeat password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, email: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords differ."))
        elif p1:
            try:
                password_validation.validate_password(
                    p1, User(email=self.email, full_name=cleaned.get("full_name", ""))
                )
            except ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class AuditFilterForm(forms.Form):
    action = forms.CharField(label=_("Action starts with"), required=False, max_length=100)
    actor = forms.TypedChoiceField(label=_("Actor"), required=False, coerce=int, empty_value=None)
    # The server's days are UTC days (an event at 09:00 in UTC+14 falls on the UTC day before): said
    # where the dates are typed.
    since = forms.DateField(
        label=_("From (UTC day)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    until = forms.DateField(
        label=_("To (UTC day, included)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["actor"].choices = [("", _("Anyone"))] + [
            (pk, email) for pk, email in audit_actors(organization).values_list("pk", "email")
        ]

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", _("The end of the range comes before its start."))
        return cleaned

    def filters(self) -> dict:
        """Return the selector's keyword arguments (`audit_events_for`); none when the form is invalid."""
        if not self.is_bound or not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "action": data.get("action") or "",
            "actor_id": data.get("actor"),
            "since": data.get("since"),
            "until": data.get("until"),
        }
