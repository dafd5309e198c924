"""Dashboard pages for API keys: list, create, one-time reveal, detail, rotate and revoke."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from credentials.api_keys import keys
from credentials.api_keys.cutover_views import cutover_context
from credentials.api_keys.forms import ApiKeyCreateForm, ApiKeyFilterForm, ApiKeyRevokeForm, ApiKeyRotateForm
from credentials.api_keys.models import ApiKey
from credentials.api_keys.selectors import api_key_chain, api_key_events, api_keys_filtered, api_keys_for
from credentials.api_keys.services import (
    api_key_create,
    api_key_request,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
)
from credentials.governance import approvals, org_policy
from credentials.governance.forms import JustificationField
from credentials.governance.models import CredentialStatus
from credentials.governance.registry import credential_path
from credentials.governance.views import credential_edit_page, governance_context
from credentials.lifetimes import expiry_in_days
from credentials.selectors import organization_members
from portal.outcomes import add_service_errors, filter_refused, refusal_text
from portal.reveal import secret_reveal
from portal.submissions import Submission, submission_of
from portal.tenancy import authorized, check, may

PAGE_SIZE = 25


def _owners(request: HttpRequest):
    members = organization_members(request.organization)
    # Creating a key for someone else is the managers' (portal.authz, `api_key.create`).
    return members if may(request, "api_key.create") else members.filter(pk=request.user.pk)


def _owner_role(request: HttpRequest) -> str | None:
    # The role whose scopes the form offers: the member's own when they can only create for themself.
    return None if may(request, "api_key.create") else request.membership.role


def _already_shown(request: HttpRequest, key_id: str) -> HttpResponse:
    messages.info(request, "That key was already issued and its secret shown once; it cannot be shown again.")
    if not key_id:  # the same form is still being handled by another request
        return redirect("org-api-keys", org_slug=request.organization.slug)
    return redirect("org-api-key-detail", org_slug=request.organization.slug, key_id=key_id)


def _key_id(made: tuple[ApiKey, object]) -> str:
    # What a resend of a create, request or rotate form is sent to: the key the first sending made.
    return made[0].key_id


def _reveal(
    request: HttpRequest, api_key: ApiKey, plaintext: str, *, rotated: ApiKey | None = None
) -> HttpResponse:
    return secret_reveal(
        request,
        "credentials/api_key_reveal.html",
        {"api_key": api_key, "plaintext": plaintext, "rotated": rotated},
    )


@authorized("api_key.view")
def api_key_list(request: HttpRequest) -> HttpResponse:
    """List the organisation's keys with search, filters and pagination."""
    organization = request.organization
    # Strip first, as the inventory does: a pasted key often carries a space or a newline.
    parsed = keys.parse(request.GET.get("q", "").strip())
    if parsed is not None:
        # Someone pasted a whole key into the search box: keep only its public id in the URL.
        query = request.GET.copy()
        query["q"] = parsed.key_id
        return redirect(f"{request.path}?{query.urlencode()}")
    members = organization_members(organization)
    form = ApiKeyFilterForm(request.GET or None, owners=members)
    filters: dict = {}
    if form.is_valid():
        owner = form.cleaned_data.get("owner")
        filters = {
            "search": form.cleaned_data.get("q") or "",
            "status": form.cleaned_data.get("status") or "",
            "environment": form.cleaned_data.get("environment") or "",
            "owner_id": owner.pk if owner else None,
        }
    refused = filter_refused(form)
    listed = [] if refused else api_keys_filtered(organization, **filters)
    page = Paginator(listed, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "credentials/api_key_list.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "now": timezone.now(),
            "filter_refused": refused,
        },
        status=400 if refused else 200,
    )


def _kind_policy(organization) -> dict:
    """Return the policy on kinds for the create page: (rule, days) per environment."""
    policy = org_policy.policy_for(organization)
    return {"live_api_keys": policy.new_api_keys("live"), "test_api_keys": policy.new_api_keys("test")}


@authorized("api_key.create")
def api_key_create_view(request: HttpRequest) -> HttpResponse:
    """Create a key and show its plaintext once, in the response to the form itself."""
    organization = request.organization
    owners = _owners(request)
    default_env = settings.PORTAL_API_KEY_ENVIRONMENT
    needs_approval = org_policy.approval_required(organization, "api_key")
    if request.method != "POST":
        form = ApiKeyCreateForm(
            owners=owners,
            default_environment=default_env,
            owner_role=_owner_role(request),
            initial={"owner": request.user},
        )
        if needs_approval:
            form.fields["justification"] = JustificationField()
        return render(
            request,
            "credentials/api_key_create.html",
            {"form": form, "needs_approval": needs_approval, **_kind_policy(organization)},
        )
    form = ApiKeyCreateForm(
        request.POST, owners=owners, default_environment=default_env, owner_role=_owner_role(request)
    )
    if needs_approval:
        form.fields["justification"] = JustificationField()
    if form.is_valid():
        submission = submission_of(request, form)
        used = submission.begin()
        if used is not None:
            return _already_shown(request, used)
        days = form.cleaned_data.get("expires_in_days")
        if needs_approval:
            return _request_key(request, form, submission)
        try:
            api_key, plaintext = submission.run(
                lambda: api_key_create(
                    organization=organization,
                    name=form.cleaned_data["name"],
                    owner=form.cleaned_data["owner"],
                    scopes=form.cleaned_data["scopes"],
                    actor=request.user,
                    environment=form.cleaned_data["environment"],
                    expires_at=expiry_in_days(days) if days else None,
                    allowed_ips=form.cleaned_data["allowed_ips"],
                    rate_limit=form.cleaned_data["rate_limit"],
                    via="dashboard",
                ),
                remember=_key_id,
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            return _reveal(request, api_key, plaintext)
    return render(
        request,
        "credentials/api_key_create.html",
        {"form": form, "needs_approval": needs_approval, **_kind_policy(organization)},
        status=400,
    )


def _request_key(request: HttpRequest, form: ApiKeyCreateForm, submission: Submission) -> HttpResponse:
    """Store a pending key and its request: no secret exists until an approver says yes."""
    try:
        api_key, _request = submission.run(
            lambda: api_key_request(
                organization=request.organization,
                name=form.cleaned_data["name"],
                owner=form.cleaned_data["owner"],
                scopes=form.cleaned_data["scopes"],
                requester=request.user,
                justification=form.cleaned_data["justification"],
                environment=form.cleaned_data["environment"],
                lifetime_days=form.cleaned_data.get("expires_in_days"),
                allowed_ips=form.cleaned_data["allowed_ips"],
                rate_limit=form.cleaned_data["rate_limit"],
            ),
            remember=_key_id,
        )
    except ValidationError as exc:
        _add_errors(form, exc)
        return render(
            request,
            "credentials/api_key_create.html",
            {"form": form, "needs_approval": True, **_kind_policy(request.organization)},
            status=400,
        )
    messages.success(
        request,
        f"Your request for “{api_key.name}” was sent to the organisation's approvers. "
        "Once approved, its owner generates the key here.",
    )
    return redirect("org-api-key-detail", org_slug=request.organization.slug, key_id=api_key.key_id)


@require_POST
@authorized("api_key.issue")
def api_key_issue_view(request: HttpRequest, key_id: str) -> HttpResponse:
    """Generate the secret of an approved key, once, and show it (owner only)."""
    api_key = get_object_or_404(api_keys_for(request.organization), key_id=key_id)
    check(request, owner_id=api_key.owner_id)
    try:
        api_key, plaintext = approvals.credential_secret_issue(credential=api_key, actor=request.user)
    except ValidationError as exc:
        messages.error(request, refusal_text(exc))
        return redirect("org-api-key-detail", org_slug=request.organization.slug, key_id=key_id)
    return _reveal(request, api_key, plaintext)


#: Service field names that a form asks for under another name.
_FORM_FIELD_FOR = {"expires_at": "expires_in_days", "overlap": "overlap_hours"}


def _add_errors(form, exc: ValidationError) -> None:
    add_service_errors(form, exc, field_for=_FORM_FIELD_FOR)


@authorized("api_key.view")
def api_key_detail(request: HttpRequest, key_id: str) -> HttpResponse:
    """Show one key: metadata, rotation chain and audit events."""
    api_key = get_object_or_404(api_keys_for(request.organization), key_id=key_id)
    # The reverse side of `M2MApplication.moved_from_key` (declared by tokens, read without importing it).
    moved_to = getattr(api_key, "moved_to_application", None)
    if moved_to is not None and moved_to.status == CredentialStatus.DENIED:
        moved_to = None  # a denied or withdrawn move never happened: the key may be moved again
    context = {
        "api_key": api_key,
        "moved_to": moved_to,
        "moved_to_path": credential_path(moved_to) if moved_to is not None else "",
        "may_move": may(request, "api_key.move", owner_id=api_key.owner_id)
        and may(request, "m2m_app.create", owner_id=api_key.owner_id),
        **cutover_context(api_key),
        "chain": api_key_chain(api_key),
        "events": api_key_events(request.organization, api_key)[:50],
        "may_change": may(request, "api_key.revoke", owner_id=api_key.owner_id),
        "exchange_lifetime": settings.PORTAL_EXCHANGE_TOKEN_LIFETIME_SECONDS,
        **governance_context(request, api_key),
    }
    return render(request, "credentials/api_key_detail.html", context)


@authorized("api_key.rotate")
def api_key_rotate_view(request: HttpRequest, key_id: str) -> HttpResponse:
    """Rotate a key with a chosen overlap and show the successor's plaintext once."""
    api_key = get_object_or_404(api_keys_for(request.organization), key_id=key_id)
    check(request, owner_id=api_key.owner_id)
    form = ApiKeyRotateForm(
        request.POST if request.method == "POST" else None,
        initial={"overlap_hours": org_policy.policy_for(request.organization).default_rotation_overlap_hours},
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            submission = submission_of(request, form)
            used = submission.begin()
            if used is not None:
                return _already_shown(request, used or api_key.key_id)
            try:
                successor, plaintext = submission.run(
                    lambda: api_key_rotate(
                        api_key=api_key,
                        actor=request.user,
                        overlap=timedelta(hours=form.cleaned_data["overlap_hours"]),
                        via="dashboard",
                    ),
                    remember=_key_id,
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                api_key.refresh_from_db()
                return _reveal(request, successor, plaintext, rotated=api_key)
    return render(
        request, "credentials/api_key_rotate.html", {"api_key": api_key, "form": form}, status=status
    )


@authorized("api_key.update")
def api_key_edit_view(request: HttpRequest, key_id: str) -> HttpResponse:
    """Rename or describe a key."""
    api_key = get_object_or_404(api_keys_for(request.organization), key_id=key_id)
    check(request, owner_id=api_key.owner_id)
    return credential_edit_page(
        request,
        api_key,
        kind_label="API key",
        saved="The key's name and description were saved.",
        update=lambda **changes: api_key_update(api_key=api_key, **changes),
    )


@authorized("api_key.revoke")
def api_key_revoke_view(request: HttpRequest, key_id: str) -> HttpResponse:
    """Revoke a key at once, with a reason."""
    api_key = get_object_or_404(api_keys_for(request.organization), key_id=key_id)
    check(request, owner_id=api_key.owner_id)
    form = ApiKeyRevokeForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                api_key_revoke(
                    api_key=api_key, actor=request.user, reason=form.cleaned_data["reason"], via="dashboard"
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"“{api_key.name}” was revoked. It stops working within a second.")
                return redirect(
                    "org-api-key-detail", org_slug=request.organization.slug, key_id=api_key.key_id
                )
    return render(
        request, "credentials/api_key_revoke.html", {"api_key": api_key, "form": form}, status=status
    )
