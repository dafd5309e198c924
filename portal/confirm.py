"""Confirmation pages for the dashboard's one-click destructive actions, for browsers without JavaScript.

With JavaScript a `data-confirm` form asks through `window.confirm` (static/portal/portal.js); without
it the form is hidden and a link leads to the action's own URL, whose GET asks the same question in
a page (`templates/portal/confirm.html`) with a form posting back there. A POST is the action, as
before, for scripts and tests that post directly.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render

#: A piece of the page: fixed text, or text made from the request and the action's target.
Text = str | Callable[[HttpRequest, Any], str]


def _text(value: Text, request: HttpRequest, target: Any) -> str:
    return value(request, target) if callable(value) else value


def confirm_page(
    title: Text,
    message: Text,
    button: Text,
    *,
    target: Callable[..., Any],
    back: Callable[[HttpRequest, Any], str],
) -> Callable:
    """Decorate a POST-only view so that a GET to its URL asks before it acts.

    A POST goes to the view unchanged. A GET (or HEAD) first calls `target(request, **kwargs)`, the
    view's own lookup and checks (404 for an object of another organisation, 403 for someone who may
    not act on it), so the page shows nothing a refused POST would not; then it renders `title`,
    `message` and `button` (text, or a function of the request and the target), a form posting to
    the same URL and a Cancel link to `back(request, target)`. Other methods are 405, as under
    `require_POST`.

    Place it below `portal.tenancy.authorized`, which then resolves the organisation, checks the role
    and asks for step-up before the question as before the action.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method == "POST":
                return view(request, *args, **kwargs)
            if request.method not in ("GET", "HEAD"):
                return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
            chosen = target(request, *args, **kwargs)
            context = {
                "confirm_title": _text(title, request, chosen),
                "confirm_message": _text(message, request, chosen),
                "confirm_button": _text(button, request, chosen),
                "confirm_back": back(request, chosen),
            }
            return render(request, "portal/confirm.html", context)

        wrapper.confirm_page = True
        return wrapper

    return decorator
