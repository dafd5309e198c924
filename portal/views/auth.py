"""Login with the failed-attempt guard."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views

from portal.forms import EmailAuthenticationForm


class PortalLoginView(auth_views.LoginView):
    """Django's login view with email login and throttling.

    A paused sign-in re-renders the form with its message, as 429 with `Retry-After`.
    """

    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if any(error.code == "throttled" for error in form.non_field_errors().as_data()):
            response.status_code = 429
            response["Retry-After"] = str(settings.PORTAL_LOGIN_LOCKOUT_SECONDS)
        return response
