"""Organisation-scoped dashboard views: resolve the organisation from the URL or answer 404."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from portal.selectors import membership_for


def org_view(*, managers_only: bool = False) -> Callable:
    """Decorate a view taking `org_slug`: set `request.organization` and `request.membership`.

    A user who is not a member gets 404 (never 403, never data); a member without a
    manager role gets 403 on manager-only views.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, org_slug: str, *args, **kwargs) -> HttpResponse:
            membership = membership_for(request.user, org_slug)
            if managers_only and not membership.is_manager:
                raise PermissionDenied("Only owners and admins of this organisation can do that.")
            request.membership = membership
            request.organization = membership.organization
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
