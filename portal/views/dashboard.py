"""The dashboard shell: landing, organisation home, members, invitations and the audit log."""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from portal.confirm import confirm_page
from portal.forms import AcceptInvitationSignupForm, AuditFilterForm, InvitationForm, RoleForm
from portal.home import home_panels_context
from portal.models import Membership, User
from portal.outcomes import add_service_errors, filter_refused, flash_outcome, refusal_text
from portal.selectors import (
    audit_events_for,
    invitations_for,
    members_for,
    memberships_for_user,
    open_invitations_for,
)
from portal.services import organizations as org_services
from portal.tenancy import LAST_ORGANIZATION, authorized, check


def _members_page(request: HttpRequest) -> HttpResponse:
    return redirect("org-members", org_slug=request.organization.slug)


def _members_context(request: HttpRequest, invite_form: InvitationForm) -> dict:
    """Return the members page's context: members, and for owners/admins the latest invitations."""
    organization = request.organization
    return {
        "memberships": members_for(organization),
        "invitations": invitations_for(organization)[:50] if request.membership.is_manager else [],
        "invite_form": invite_form,
        "roles": RoleForm.base_fields["role"].choices,
        # One-use tokens of the resend forms (`portal.submissions`): this rendering's, per invitation.
        "resend_token": secrets.token_urlsafe(16),
    }


def _member_or_404(request: HttpRequest, member_id: int) -> Membership:
    """Return a membership of the current organisation (another organisation's is 404)."""
    return get_object_or_404(members_for(request.organization), pk=member_id)


def _removable_member(request: HttpRequest, member_id: int) -> Membership:
    """Return the membership if the member may remove it (anyone may leave): 404, else 403."""
    membership = _member_or_404(request, member_id)
    check(request, own=_leaving(request, membership))
    return membership


def _leaving(request: HttpRequest, membership: Membership) -> bool:
    return membership.user_id == request.user.pk


def _open_invitation(request: HttpRequest, invitation_id: int):
    return get_object_or_404(invitations_for(request.organization), pk=invitation_id)


def _members_path(request: HttpRequest, _target=None) -> str:
    return reverse("org-members", kwargs={"org_slug": request.organization.slug})


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Send the user to their organisation: the one chosen in the switcher, else the last one worked in
    (`portal.tenancy`), else the first by name."""
    memberships = list(memberships_for_user(request.user))
    last = request.GET.get("org") or request.session.get(LAST_ORGANIZATION)
    for membership in memberships:
        if membership.organization.slug == last:
            return redirect("org-home", org_slug=last)
    if memberships:
        return redirect("org-home", org_slug=memberships[0].organization.slug)
    return render(request, "portal/no_organization.html")


@authorized("org.view")
def org_home(request: HttpRequest) -> HttpResponse:
    """Show the organisation's overview."""
    organization = request.organization
    member_counts = members_for(organization).aggregate(
        total=Count("pk"), managers=Count("pk", filter=Q(role__in=["owner", "admin"]))
    )
    context = {
        "member_counts": member_counts,
        "open_invitations": open_invitations_for(organization).count(),
        "recent_events": audit_events_for(organization)[:8] if request.membership.is_manager else [],
        **home_panels_context(request),
    }
    return render(request, "portal/org_home.html", context)


@authorized("members.view")
def members(request: HttpRequest) -> HttpResponse:
    """List members and, for owners/admins, invitations and the invite form."""
    return render(request, "portal/members.html", _members_context(request, InvitationForm()))


@require_POST
@authorized("members.invite")
def invitation_create(request: HttpRequest) -> HttpResponse:
    """Invite someone by email."""
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation, _token = org_services.invitation_create(
                organization=request.organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=request.user,
                actor_membership=request.membership,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                f"Invitation sent to {invitation.email}. "
                f"The link expires {invitation.expires_at:%d %b %Y %H:%M} UTC.",
            )
            return _members_page(request)
    return render(request, "portal/members.html", _members_context(request, form), status=400)


@authorized("members.invitation_revoke")
@confirm_page(
    lambda _request, invitation: f"Revoke the invitation for {invitation.email}?",
    "Its link stops working at once.",
    "Revoke the invitation",
    target=_open_invitation,
    back=_members_path,
)
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """Revoke an open invitation (a GET asks first)."""
    invitation = _open_invitation(request, invitation_id)
    flash_outcome(
        request,
        lambda: org_services.invitation_revoke(
            invitation=invitation, actor=request.user, actor_membership=request.membership
        ),
        f"The invitation for {invitation.email} was revoked.",
    )
    return _members_page(request)


@require_POST
@authorized("members.role")
def member_role(request: HttpRequest, member_id: int) -> HttpResponse:
    """Change a member's role."""
    membership = _member_or_404(request, member_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
    else:
        role = form.cleaned_data["role"]
        flash_outcome(
            request,
            lambda: org_services.membership_change_role(
                membership=membership, role=role, actor=request.user, actor_membership=request.membership
            ),
            f"{membership.user.email} is now {role}.",
        )
    return _members_page(request)


@authorized("members.remove")
@confirm_page(
    lambda request, membership: (
        f"Leave {request.organization.name}?"
        if _leaving(request, membership)
        else f"Remove {membership.user.email} from {request.organization.name}?"
    ),
    lambda request, membership: (
        "You lose access at once. Credentials you own become orphaned and are suspended after the "
        "organisation's grace period unless someone takes them over."
        if _leaving(request, membership)
        else "They lose access at once. Credentials they own become orphaned and are suspended after the "
        "organisation's grace period unless you reassign them."
    ),
    lambda request, membership: "Leave organisation" if _leaving(request, membership) else "Remove member",
    target=_removable_member,
    back=_members_path,
)
def member_remove(request: HttpRequest, member_id: int) -> HttpResponse:
    """Remove a member (owners/admins), or leave the organisation (anyone, for themselves)."""
    membership = _removable_member(request, member_id)
    leaving = _leaving(request, membership)
    name = request.organization.name
    removed = flash_outcome(
        request,
        lambda: org_services.membership_remove(
            membership=membership, actor=request.user, actor_membership=request.membership
        ),
        f"You left {name}." if leaving else f"{membership.user.email} was removed from {name}.",
    )
    if removed and leaving:
        return redirect("dashboard")
    return _members_page(request)


@authorized("audit.read")
def audit_log_page(request: HttpRequest) -> HttpResponse:
    """Show the organisation's audit events, newest first, filtered and paginated."""
    organization = request.organization
    form = AuditFilterForm(request.GET or None, organization=organization)
    refused = filter_refused(form)
    listed = [] if refused else audit_events_for(organization, **form.filters())
    page = Paginator(listed, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "portal/audit.html",
        {"form": form, "page": page, "query": query.urlencode(), "filter_refused": refused},
        status=400 if refused else 200,
    )


def _invitation_closed(request: HttpRequest, state: str) -> HttpResponse:
    """Say why an invitation link cannot be used: 404 for no invitation, 410 for a closed one."""
    return render(
        request, "portal/invitation_invalid.html", {"state": state}, status=404 if state == "invalid" else 410
    )


# As allauth's own password forms: Django's error reports (AdminEmailHandler) leave them out.
@sensitive_post_parameters("password1", "password2")
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Accept an invitation: sign in (or create the account) and join the organisation."""
    invitation = org_services.invitation_for_token(token)
    # The person who accepted it, posting again (a double click, the form resent), is let through:
    # the service answers with their membership, so this request goes to the organisation too.
    again = (
        invitation is not None
        and request.method == "POST"
        and request.user.is_authenticated
        and invitation.accepted_by_id == request.user.pk
    )
    if invitation is None or not (invitation.is_open or again):
        return _invitation_closed(request, invitation.state if invitation else "invalid")
    has_account = User.objects.filter(email__iexact=invitation.email).exists()
    form = None
    if request.user.is_authenticated:
        if request.method == "POST":
            try:
                membership = org_services.invitation_accept(token=token, user=request.user)
            except ValidationError as exc:
                if exc.code in ("accepted", "revoked", "expired"):
                    return _invitation_closed(request, exc.code)  # closed since the page was read
                messages.error(request, refusal_text(exc))
            else:
                messages.success(request, f"Welcome to {membership.organization.name}.")
                return redirect("org-home", org_slug=membership.organization.slug)
    elif not has_account:
        form = AcceptInvitationSignupForm(request.POST or None, email=invitation.email)
        if request.method == "POST" and form.is_valid():
            try:
                user, membership = org_services.user_create_from_invitation(
                    token=token,
                    full_name=form.cleaned_data["full_name"],
                    password=form.cleaned_data["password1"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(
                    request, f"Your account is ready. Welcome to {membership.organization.name}."
                )
                return redirect("org-home", org_slug=membership.organization.slug)
    context = {
        "invitation": invitation,
        "has_account": has_account,
        "form": form,
        "login_url": f"{reverse('login')}?next={request.path}",
        "email_matches": request.user.is_authenticated and request.user.email.lower() == invitation.email,
    }
    return render(request, "portal/invitation_accept.html", context)
