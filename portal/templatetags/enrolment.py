"""Template tag for the way back from a second-factor set-up the portal asked for."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from portal.account_security.middleware import ENROLMENT_NEXT

register = template.Library()


@register.simple_tag(takes_context=True)
def enrolment_continue_url(context) -> str:
    """Return the page the person was sent from to set up a second factor, else the dashboard."""
    request = context.get("request")
    path = request.session.get(ENROLMENT_NEXT) if request is not None else None
    # A path of this site only (get_full_path), never another host's address.
    if isinstance(path, str) and path.startswith("/") and url_has_allowed_host_and_scheme(path, None):
        return path
    return reverse("dashboard")
