"""Login with the failed-attempt guard."""

from __future__ import annotations

from django.contrib.auth import views as auth_views

from portal.forms import EmailAuthenticationForm


class PortalLoginView(auth_views.LoginView):
    """Django's login view with email login and throttling."""

    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True
