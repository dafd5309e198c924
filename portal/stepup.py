"""Step-up: ask for a fresh password or second factor before a sensitive action.

Built on allauth's public reauthentication pieces: its authentication records
(`allauth.account.authentication`), its reauthentication methods and pages
(`get_adapter().get_reauthentication_methods`), and `ACCOUNT_REAUTHENTICATION_TIMEOUT` equal to
`PORTAL_STEP_UP_SECONDS`. allauth's own `reauthentication_required` decorator is not used for the
portal's actions: it replays a suspended POST after re-authentication (a replayed POST could mint a
secret the user no longer expects; `portal.drafts` keeps the form's entries instead), it counts only
re-authentications, not the sign-in itself, and it always offers the first method (the password).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

from allauth.account.adapter import get_adapter
from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from portal.account_security.events import LOGIN_AT
from portal.drafts import draft_stash


def last_authenticated_at(request: HttpRequest) -> float | None:
    """Return when this session last proved who it is: sign-in, re-authentication or second factor."""
    stamps = [request.session.get(LOGIN_AT)]
    stamps += [record.get("at") for record in get_authentication_records(request, request.user)]
    stamps = [s for s in stamps if isinstance(s, int | float)]
    return max(stamps) if stamps else None


def is_recently_authenticated(request: HttpRequest) -> bool:
    """Return whether the last authentication is younger than PORTAL_STEP_UP_SECONDS."""
    at = last_authenticated_at(request)
    return at is not None and time.time() - at < settings.PORTAL_STEP_UP_SECONDS


def step_up_url(request: HttpRequest, next_url: str) -> str:
    """Return the re-authentication page: the second factor when enrolled, else the password.

    An authenticator app comes first, then a passkey; recovery codes only when nothing else is left.
    """
    methods = {m["id"]: m["url"] for m in get_adapter().get_reauthentication_methods(request.user)}
    if not methods:
        raise PermissionDenied("This action needs a fresh sign-in, and this account has no way to give one.")
    has_totp = Authenticator.objects.filter(user_id=request.user.pk, type=Authenticator.Type.TOTP).exists()
    for method_id in (
        "mfa_reauthenticate" if has_totp else "",
        "mfa_reauthenticate:webauthn",
        "mfa_reauthenticate",
        "reauthenticate",
    ):
        if method_id in methods:
            return f"{methods[method_id]}?{urlencode({'next': next_url})}"
    return f"{next(iter(methods.values()))}?{urlencode({'next': next_url})}"


def _back_url(request: HttpRequest) -> str:
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    # After a POST the user comes back to the page the form was on and submits it again: a
    # replayed POST could mint a secret the user no longer expects.
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.path


def step_up_redirect(request: HttpRequest) -> HttpResponse | None:
    """Return a redirect to re-authentication when the last proof is stale, else None.

    For code that is not a view of its own, such as an admin action.
    """
    if is_recently_authenticated(request):
        return None
    target = step_up_url(request, draft_stash(request, _back_url(request)))
    if request.method in ("GET", "HEAD"):
        messages.info(request, "Confirm it is you to continue.")
    else:
        messages.info(request, "Confirm it is you, then submit the form again. Nothing was changed.")
    return HttpResponseRedirect(target)


def step_up_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a view for a sensitive action: re-authenticate first when the last proof is stale.

    `portal.tenancy.authorized` applies it when the authority table marks the action for step-up.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return step_up_redirect(request) or view(request, *args, **kwargs)

    wrapper.step_up_required = True
    return wrapper
