"""Organisation-scoped dashboard views: resolve the organisation from the URL or answer 404, then
ask the authority table (portal.authz) whether the member may do the view's action."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from django.contrib.auth import SESSION_KEY
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from portal import authz
from portal.selectors import membership_for
from portal.stepup import step_up_required

#: The session key of the organisation last worked in (read by the landing page).
LAST_ORGANIZATION = "portal_org"


def authorized(action: str, **by_method: str) -> Callable:
    """Decorate a view taking `org_slug` with its action in the authority table (portal.authz).

    Another organisation answers 404; a role that may never do the action, 403; an action the
    table marks for step-up asks for a fresh sign-in first. `{kind}` in the action is filled
    from the URL's `kind` (the governance pages serve both credential kinds). Checks on the
    target (whose credential it is) are the view's: `check(request, owner_id=…)`.
    `by_method` names another action for one HTTP method (`post="security.change"`) where
    seeing a page and changing it are not for the same roles.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        stepped = step_up_required(view)

        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, org_slug: str, *args, **kwargs) -> HttpResponse:
            membership = membership_for(request.user, org_slug)
            request.membership = membership
            request.organization = membership.organization
            if membership.in_other_organizations:
                _remember_organization(request, membership.organization.slug)
            request.actor = authz.person(request.user, membership)
            chosen = by_method.get(request.method.lower(), action)
            request.authz_action = name = chosen.format(**kwargs)
            try:
                authz.authorize(request.actor, name, own=bool(authz.rule(name).own_roles))
            except authz.Refused as exc:
                raise PermissionDenied(exc.detail) from None
            inner = stepped if authz.rule(name).step_up else view
            return inner(request, *args, **kwargs)

        wrapper.authz_action = action
        wrapper.authz_actions = dict(by_method)
        return wrapper

    return decorator


def _remember_organization(request: HttpRequest, slug: str) -> None:
    """Remember the organisation last worked in, for the landing page (`portal.views.dashboard`).

    Every organisation page counts, not only its overview: a bookmark or an e-mail's link goes
    straight to a credential. Only in a signed-in browser session (`login_required` has let the
    request through on one; a request without a session is left without one), only for a person
    in several organisations (the landing page of someone in one can only go there), and written
    only when the organisation changes: a page in the same organisation saves no session.
    """
    session = getattr(request, "session", None)
    if session is None or session.get(SESSION_KEY) is None:
        return
    if session.get(LAST_ORGANIZATION) != slug:
        session[LAST_ORGANIZATION] = slug


def check(request: HttpRequest, action: str | None = None, **target) -> None:
    """Raise PermissionDenied unless the signed-in member may do the action to this target."""
    try:
        authz.authorize(request.actor, action or request.authz_action, **target)
    except authz.Refused as exc:
        raise PermissionDenied(exc.detail) from None


def may(request: HttpRequest, action: str, **target) -> bool:
    """Return whether the signed-in member may do the action to this target (to show a button)."""
    return authz.allowed(request.actor, action, **target)


T = TypeVar("T")


def found_or_404(lookup: Callable[..., T], organization, pk: int, *, missing: str) -> T:
    """Return `lookup(organization, pk)` (a selector scoped to the organisation), or answer 404."""
    try:
        return lookup(organization, pk)
    except ObjectDoesNotExist:
        raise Http404(missing) from None
