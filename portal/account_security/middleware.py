"""Session timeouts and the MFA enrolment gate for people signed in to the dashboard."""

from __future__ import annotations

import contextlib
import time

from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from portal.account_security.events import CLOCK_AT, LOGIN_AT, SEEN_AT
from portal.account_security.policy import enrolment_needed
from portal.infra.faults import is_database_outage, unavailable_response
from portal.infra.lean import MACHINE_PATHS, MACHINE_PREFIXES


def seen_resolution_seconds(idle_seconds: int) -> int:
    """Return how stale a session's recorded last-seen time may get before a request refreshes it.

    A tenth of the idle timeout, between 1 s and a minute: saving the session (and its row in the
    sessions list) on every request would cost a write each, and the idle check allows for it.
    """
    return min(60, max(1, idle_seconds // 10))


#: Where machines call: a refusal there is JSON or the view's own answer, never a redirect to a page.
#: The machine endpoints' prefixes normally skip these layers (portal.infra.lean); this is the second line.
_API_PREFIXES = ("/api/", *MACHINE_PREFIXES)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(_API_PREFIXES)


class _SessionCheck:
    """Run `_check` before the view: its answer, if any, is the request's answer."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            early = self._check(request)
        except Exception as exc:
            # Loading the session needs the database: an outage answers 503 here, like in views.
            if is_database_outage(exc):
                return unavailable_response(request)
            raise
        return early if early is not None else self.get_response(request)

    def _check(self, request: HttpRequest) -> HttpResponse | None:
        raise NotImplementedError


class SessionTimeoutMiddleware(_SessionCheck):
    """End sessions idle for PORTAL_SESSION_IDLE_SECONDS or older than PORTAL_SESSION_ABSOLUTE_SECONDS."""

    def _check(self, request: HttpRequest) -> HttpResponse | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            session = request.session
            login_at = session.get(LOGIN_AT) or session.get(CLOCK_AT)
            seen_at = session.get(SEEN_AT)
            if login_at is None:
                # A session from before these stamps existed starts its clock now: under its own key,
                # for this is no sign-in, and a step-up must not count it as a fresh one.
                session[CLOCK_AT] = login_at = now
            resolution = seen_resolution_seconds(settings.PORTAL_SESSION_IDLE_SECONDS)
            # The last request came at most `resolution` after the recorded time (a later one would
            # have been recorded), so a session is ended only once it has surely been idle long
            # enough: between PORTAL_SESSION_IDLE_SECONDS and that plus `resolution` after it.
            idle = seen_at is not None and now - seen_at > settings.PORTAL_SESSION_IDLE_SECONDS + resolution
            if idle or now - login_at > settings.PORTAL_SESSION_ABSOLUTE_SECONDS:
                logout(request)
                if _is_api(request):
                    return self.get_response(request)  # anonymous now: the API answers 401 itself
                messages.info(request, "Your session has ended. Sign in again to continue.")
                return redirect_to_login(request.get_full_path())
            if seen_at is None or now - seen_at > resolution:
                session[SEEN_AT] = now
                # Best effort: the sessions list must never break a request.
                with contextlib.suppress(Exception):
                    UserSession.objects.create_from_request(request)
        return None


#: The session key of the page someone was sent from to the second-factor set-up.
ENROLMENT_NEXT = "portal.enrolment_next"


class MfaEnrolmentMiddleware(_SessionCheck):
    """Send people who must use a second factor, and have none yet, to enrolment; allow nothing else.

    The machine endpoints are not gated: they authenticate the credential in the request, never
    the session beside it, so a person's missing second factor says nothing about them.
    """

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        self.allowed_prefixes = (
            "/accounts/",
            f"/{settings.STATIC_URL.strip('/')}/",
            "/healthz",
            *MACHINE_PREFIXES,
        )

    def _check(self, request: HttpRequest) -> HttpResponse | None:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(self.allowed_prefixes)
            and request.path not in MACHINE_PATHS
            and enrolment_needed(request)
        ):
            text = "Set up two-factor authentication to continue: your account or organisation requires it."
            if _is_api(request):
                return JsonResponse({"detail": text, "code": "mfa_enrolment_required"}, status=403)
            messages.warning(request, text)
            if request.method == "GET":  # where to continue once enrolled (the recovery codes' page)
                request.session[ENROLMENT_NEXT] = request.get_full_path()
            return redirect(reverse("mfa_index"))
        return None
