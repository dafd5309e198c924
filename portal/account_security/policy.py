"""Who must use a second factor: staff always, members as their organisations require."""

from __future__ import annotations

import time

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest

from portal.models import MANAGER_ROLES, Membership, MfaRequirement, Organization, User


def organizations_requiring_mfa(user: User):
    """Return the memberships whose organisation requires this user to use a second factor."""
    return Membership.objects.filter(user=user).filter(
        Q(organization__mfa_required=MfaRequirement.EVERYONE)
        | Q(organization__mfa_required=MfaRequirement.MANAGERS, role__in=MANAGER_ROLES)
    )


def mfa_required_for(user: User) -> bool:
    """Return whether the user must have a second factor before doing anything else."""
    if not user.is_authenticated:
        return False
    return user.is_staff or organizations_requiring_mfa(user).exists()


def has_mfa(user: User) -> bool:
    """Return whether the user has enrolled a second factor (authenticator app or passkey)."""
    return is_mfa_enabled(user, types=["totp", "webauthn"])


# The gate's decision is kept in the session so an ordinary page costs no query. It is
# recomputed when anything it depends on changes (version numbers in the shared cache: one
# for organisation policies, one per user for their memberships and authenticators, bumped
# by the signals below), when the staff flag changes, and at least once a minute (a
# per-process cache without Redis cannot share the versions).
_GATE_SESSION_KEY = "portal_mfa_gate"
_GATE_MAX_AGE_SECONDS = 60


def _version_keys(user_id: int) -> list[str]:
    return ["portal:mfa-gate:orgs", f"portal:mfa-gate:user:{user_id}"]


def _gate_versions(user_id: int) -> list[int] | None:
    try:
        found = cache.get_many(_version_keys(user_id))
    except Exception:  # noqa: BLE001  a cache outage means "recompute", never "allow"
        return None
    return [int(found.get(key) or 0) for key in _version_keys(user_id)]


def _bump(key: str) -> None:
    """Move the version on now and again once the change commits.

    Now: this process's next request sees the change at once. After the commit too: a request
    that read the old, committed data while the change was being saved cached "not needed" under
    the first new version, which would have stood for a minute.
    """
    _bump_now(key)
    transaction.on_commit(lambda: _bump_now(key))


def _bump_now(key: str) -> None:
    try:
        if not cache.add(key, 1, None):
            cache.incr(key)
    except Exception:  # noqa: BLE001, S110  the one-minute bound still applies
        pass


def _bump_for_user(sender, instance, **kwargs) -> None:
    _bump(_version_keys(instance.user_id)[1])


def _bump_for_organizations(sender, instance, **kwargs) -> None:
    _bump(_version_keys(0)[0])


def enrolment_needed(request: HttpRequest, user: User | None = None) -> bool:
    """Return whether the signed-in user must enrol a second factor before anything else.

    Also called at sign-in, so that the first page after it costs no extra query.
    """
    user = user if user is not None else request.user
    versions = _gate_versions(user.pk)
    cached = request.session.get(_GATE_SESSION_KEY)
    if (
        isinstance(cached, dict)
        and versions is not None
        and cached.get("v") == versions
        and cached.get("staff") == user.is_staff
        and time.time() - cached.get("at", 0) < _GATE_MAX_AGE_SECONDS
    ):
        return False
    needed = mfa_required_for(user) and not has_mfa(user)
    if needed:
        request.session.pop(_GATE_SESSION_KEY, None)
    else:
        request.session[_GATE_SESSION_KEY] = {"v": versions, "staff": user.is_staff, "at": time.time()}
    return needed


for _model in (Membership, Authenticator):
    post_save.connect(_bump_for_user, sender=_model, dispatch_uid=f"mfa-gate-save-{_model.__name__}")
    post_delete.connect(_bump_for_user, sender=_model, dispatch_uid=f"mfa-gate-delete-{_model.__name__}")
post_save.connect(_bump_for_organizations, sender=Organization, dispatch_uid="mfa-gate-save-org")
