"""Template context shared by every dashboard page."""

from __future__ import annotations

from django.http import HttpRequest

from portal.selectors import memberships_for_user


def portal(request: HttpRequest) -> dict:
    """Expose the user's organisations (for the switcher) and the current one."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "user_memberships": memberships_for_user(user),
        "current_organization": getattr(request, "organization", None),
        "current_membership": getattr(request, "membership", None),
    }
