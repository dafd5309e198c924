"""Resend an invitation and show its new link once, with a copy button."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from portal.outcomes import refusal_text
from portal.reveal import secret_reveal
from portal.selectors import invitations_for
from portal.services import organizations as org_services
from portal.submissions import OnceForm, Submission, submission_of
from portal.tenancy import authorized


@require_POST
@authorized("members.invite")
def invitation_resend(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """Issue a new link for an open invitation, email it, and show it once so it can be copied.

    The same form sent twice (a double click, a reload of the link page) resends once: a second
    new link would kill the one just shown and copied (`portal.submissions`).
    """
    invitation = get_object_or_404(invitations_for(request.organization), pk=invitation_id)
    form = OnceForm(request.POST)
    submission = submission_of(request, form) if form.is_valid() else Submission(request, "")
    if submission.begin() is not None:
        messages.info(request, "That link was already shown once. Resend again for a new one.")
        return redirect("org-members", org_slug=request.organization.slug)
    try:
        invitation, token = submission.run(
            lambda: org_services.invitation_resend(
                invitation=invitation, actor=request.user, actor_membership=request.membership
            ),
            remember=lambda made: made[0].pk,
        )
    except ValidationError as exc:
        messages.error(request, refusal_text(exc))
        return redirect("org-members", org_slug=request.organization.slug)
    return secret_reveal(
        request,
        "portal/invitation_link.html",
        {"invitation": invitation, "link": org_services.invitation_link(token)},
    )
