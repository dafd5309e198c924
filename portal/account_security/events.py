"""Audit events for account security, fed by django-allauth's signals. Never a code or secret."""

from __future__ import annotations

import contextlib
import time

from allauth.mfa import signals as mfa_signals
from allauth.usersessions.models import UserSession
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

# Importing the policy also connects the signals that keep its per-session decision fresh,
# in every process (web servers, management commands, the admin).
from portal.account_security.policy import enrolment_needed
from portal.services.audit import audit_log

#: Session keys: when the session signed in, and when it was last seen.
LOGIN_AT = "portal_login_at"
#: Where the absolute timeout's clock started for a session signed in before LOGIN_AT existed:
#: no sign-in, so never a fresh authentication for step-up (portal.stepup reads LOGIN_AT).
CLOCK_AT = "portal_clock_at"
SEEN_AT = "portal_seen_at"


def _audit(action: str, user, authenticator=None, **extra) -> None:
    audit_log(
        action=action,
        actor=user,
        organization=None,
        target=user,
        target_label=user.email,
        extra={**({"type": authenticator.type} if authenticator is not None else {}), **extra},
    )


def step_up_failed(*, user, method: str) -> None:
    """Record a failed re-authentication (a wrong password or code at step-up)."""
    _audit("portal.account.step_up_failed", user, method=method)


def sessions_ended(*, actor, user, count: int, via: str) -> None:
    """Record that sessions of `user` were ended."""
    audit_log(
        action="portal.account.sessions_ended",
        actor=actor,
        organization=None,
        target=user,
        target_label=user.email,
        extra={"count": count, "via": via},
    )


@receiver(user_logged_in, dispatch_uid="portal-session-stamps")
def _stamp_session(sender, request, user, **kwargs) -> None:
    if request is None or not hasattr(request, "session"):
        return
    now = time.time()
    request.session[LOGIN_AT] = now
    request.session[SEEN_AT] = now
    enrolment_needed(request, user)
    # List the new session at once (allauth does it too for its own logins; this also covers
    # logins by other paths, such as accepting an invitation). IP or UA may be missing in tests.
    with contextlib.suppress(Exception):
        UserSession.objects.create_from_request(request, user=user)


@receiver(mfa_signals.authenticator_added, dispatch_uid="portal-mfa-added")
def _added(sender, request, user, authenticator, **kwargs) -> None:
    _audit("portal.account.mfa_enrolled", user, authenticator)


@receiver(mfa_signals.authenticator_removed, dispatch_uid="portal-mfa-removed")
def _removed(sender, request, user, authenticator, **kwargs) -> None:
    _audit("portal.account.mfa_removed", user, authenticator)


@receiver(mfa_signals.authenticator_reset, dispatch_uid="portal-mfa-reset")
def _reset(sender, request, user, authenticator, **kwargs) -> None:
    _audit("portal.account.recovery_codes_regenerated", user, authenticator)


@receiver(mfa_signals.authenticator_used, dispatch_uid="portal-mfa-used")
def _used(sender, request, user, authenticator, reauthenticated=False, **kwargs) -> None:
    if authenticator.type == "recovery_codes":
        _audit("portal.account.recovery_code_used", user, authenticator, step_up=bool(reauthenticated))


@receiver(mfa_signals.authentication_failed, dispatch_uid="portal-mfa-failed")
def _failed(sender, request, user, authenticator=None, reauthentication=False, **kwargs) -> None:
    if reauthentication:
        step_up_failed(user=user, method="mfa")
    else:
        _audit("portal.account.mfa_failed", user, authenticator)
