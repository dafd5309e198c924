"""Account security pages: one's sessions and password, and an organisation's two-factor requirement."""

from __future__ import annotations

from allauth.account.views import LoginView
from allauth.account.views import PasswordChangeView as AllauthPasswordChangeView
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.views import ActivateTOTPView
from allauth.usersessions.models import UserSession
from allauth.usersessions.views import ListUserSessionsView
from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _

from portal.account_security.events import sessions_ended
from portal.account_security.totp import totp_code_step, totp_step_spend
from portal.models import MfaRequirement
from portal.services import organizations as org_services
from portal.stepup import step_up_redirect, step_up_required
from portal.tenancy import authorized, may


class SessionsView(ListUserSessionsView):
    """List the user's sessions (device, IP, last seen) and sign out all the others."""

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        # Last-seen is kept by portal.account_security.middleware (once a minute), not by allauth.
        context["show_last_seen_at"] = True
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Signing the others out needs a fresh proof: a stolen session cookie must not be able to
        # sign the real person out and keep the account to itself.
        return step_up_redirect(request) or super().post(request, *args, **kwargs)

    def form_valid(self, form) -> HttpResponse:
        user = self.request.user
        others = UserSession.objects.filter(user=user).exclude(session_key=self.request.session.session_key)
        count = others.count()
        response = super().form_valid(form)
        with transaction.atomic():
            sessions_ended(actor=user, user=user, count=count, via="sessions-page")
        return response


sessions = SessionsView.as_view()


@method_decorator(step_up_required, name="dispatch")
class PasswordChangeView(AllauthPasswordChangeView):
    """allauth's change-password page, behind step-up.

    A new password signs every other session out, so a stolen session that knows the password
    could otherwise keep the account to itself; with a second factor, step-up asks for the factor.
    The form still asks for the current password (`portal.forms.PortalChangePasswordForm`).
    """


password_change = PasswordChangeView.as_view()


class TotpActivateView(ActivateTOTPView):
    """allauth's set-up page for an authenticator app; the code typed to confirm it is spent.

    allauth checks that code against the new secret, outside the authenticator's row (there is none
    yet), so the same code could sign in once more within its 30 seconds: someone looking over
    the shoulder at setup could use it. Its time step becomes the row's last accepted one
    (portal.account_security.totp), as if it had signed in.
    """

    def form_valid(self, form) -> HttpResponse:
        step = totp_code_step(form.secret, form.cleaned_data["code"])
        response = super().form_valid(form)
        totp = Authenticator.Type.TOTP
        authenticator = Authenticator.objects.filter(user=self.request.user, type=totp).first()
        if step is not None and authenticator is not None:
            totp_step_spend(authenticator=authenticator, step=step)
        return response


totp_activate = TotpActivateView.as_view()


def email_addresses(request: HttpRequest) -> HttpResponse:
    """allauth's e-mail page, switched off (404): an account's address is the one its invitation
    proved, and only staff change it, in the admin. Self-service, a stolen session could make the
    attacker's address primary, then reset the password to it: a takeover with no step-up."""
    raise Http404("Ask an administrator to change your e-mail address.")


class MfaRequirementForm(forms.Form):
    mfa_required = forms.ChoiceField(
        label=_("Two-factor authentication"),
        choices=MfaRequirement.choices,
        widget=forms.RadioSelect,
        help_text=_("People who must use it are sent to set it up the next time they open a page."),
    )


@authorized("security.view", post="security.change")
def org_security(request: HttpRequest) -> HttpResponse:
    """Show the organisation's two-factor requirement (owners and admins); let owners change it."""
    organization = request.organization
    is_owner = may(request, "security.change")
    form = MfaRequirementForm(request.POST or None, initial={"mfa_required": organization.mfa_required})
    if request.method == "POST" and form.is_valid():
        org_services.organization_set_mfa_requirement(
            organization=organization, requirement=form.cleaned_data["mfa_required"], actor=request.user
        )
        messages.success(request, "Two-factor requirement saved.")
        return redirect("org-security", org_slug=organization.slug)
    return render(
        request,
        "portal/org_security.html",
        {"form": form, "is_owner": is_owner},
        status=400 if request.method == "POST" else 200,
    )


class PortalLoginView(LoginView):
    """allauth's login view; a paused sign-in re-renders the form as 429 with `Retry-After`."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if any(error.code == "too_many_login_attempts" for error in form.non_field_errors().as_data()):
            response.status_code = 429
            response["Retry-After"] = str(settings.PORTAL_LOGIN_LOCKOUT_SECONDS)
        return response
