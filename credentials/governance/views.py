"""Dashboard pages for governance: inventory (and CSV), approvals, policy, and per-credential actions.

The per-credential views serve both kinds: the URL conf passes `kind` and the kind's own
URL kwarg (`key_id` or `app_id`).
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.views.decorators.http import require_POST

from credentials.forms import CredentialEditForm
from credentials.governance import common, edits, org_policy, ownership, reviews
from credentials.governance.approvals import (
    credential_for_request,
    credential_request_approve,
    credential_request_cancel,
    credential_request_create,
    credential_request_deny,
)
from credentials.governance.forms import (
    DecisionForm,
    InventoryFilterForm,
    PolicyForm,
    ReassignForm,
    RecertifyForm,
    RuntimePolicyForm,
    ScopeRequestForm,
)
from credentials.governance.models import CredentialStatus, RequestState, RequestType, SuspensionReason
from credentials.governance.registry import credential_path, get_kind, kind_of, ref_in_secret
from credentials.governance.selectors import (
    FLAG_LABELS,
    InventoryFilters,
    inventory_list,
    inventory_queryset,
    inventory_rows,
    pending_requests_for,
    request_credential_refs,
    requests_for,
    requests_for_credential,
)
from credentials.insight.page import insight_context
from credentials.leaks.selectors import leak_reports_for_credential
from credentials.selectors import organization_members
from portal.confirm import confirm_page
from portal.infra.spreadsheet import csv_lines
from portal.outcomes import (
    add_service_errors,
    filter_refused,
    flash_outcome,
    form_errors_text,
    invalid_filter_response,
    refusal_text,
)
from portal.stepup import step_up_redirect
from portal.tenancy import authorized, check, may

PAGE_SIZE = 50
CSV_COLUMNS = [
    "kind",
    "lifecycle",
    "id",
    "name",
    "owner",
    "status",
    "scopes",
    "created",
    "expires",
    "last_used",
    "review_due",
    "flags",
    "requests_30d",
]


# --- inventory ------------------------------------------------------------------------------


def inventory_filters(request: HttpRequest, members) -> tuple[InventoryFilterForm, InventoryFilters]:
    """Read the inventory filters from the query string (shared by the page, the CSV and the API)."""
    form = InventoryFilterForm(request.GET or None, owners=members)
    filters = InventoryFilters()
    if form.is_valid():
        data = form.cleaned_data
        filters = InventoryFilters(
            kind=data.get("kind") or "",
            status=data.get("status") or "",
            owner_id=data["owner"].pk if data.get("owner") else None,
            flag=data.get("flag") or "",
            search=(data.get("q") or "").strip(),
            # Scope names are lower case: match ORDERS:READ as every kind's filter would.
            scope=(data.get("scope") or "").strip().lower(),
            attention=data.get("attention") or "",
            sort=data.get("sort") or "",
        )
    return form, filters


@authorized("inventory.read")
def inventory(request: HttpRequest) -> HttpResponse:
    """Show both credential kinds in one table with flags, filters and pagination."""
    organization = request.organization
    ref = ref_in_secret(request.GET.get("q", "").strip())
    if ref is not None:
        # A whole secret pasted into the search box: keep only its public id in the URL and page.
        query = request.GET.copy()
        query["q"] = ref
        return redirect(f"{request.path}?{query.urlencode()}")
    form, filters = inventory_filters(request, organization_members(organization))
    refused = filter_refused(form)
    now = timezone.now()
    listed = [] if refused else inventory_list(organization, filters, now=now)
    page = Paginator(listed, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = inventory_rows(list(page.object_list), org_slug=organization.slug, now=now)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "credentials/governance/inventory.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "query": query.urlencode(),
            "flag_labels": FLAG_LABELS,
            "sort_headers": _sort_headers(query, filters.sort),
            "sorted": bool(filters.sort),  # the pager says Previous/Next, not Newer/Older
            "filter_refused": refused,
        },
        status=400 if refused else 200,
    )


def _sort_headers(query, current: str) -> dict[str, dict[str, str]]:
    """Return, per sortable column, its sort link (descending first, then flipped) and aria-sort."""
    headers = {}
    for column in ("requests", "last_used"):
        descending = current == f"-{column}"
        following = query.copy()
        following["sort"] = column if descending else f"-{column}"
        state = "descending" if descending else "ascending" if current == column else "none"
        headers[column] = {"query": following.urlencode(), "aria_sort": state}
    return headers


def _csv_lines(organization, filters: InventoryFilters):
    # A name starting with = + - @ would run as a formula in a spreadsheet: csv_lines quotes it.
    return csv_lines(CSV_COLUMNS, _csv_rows(organization, filters))


def _csv_rows(organization, filters: InventoryFilters):
    now = timezone.now()
    chunk: list[dict] = []
    for values in inventory_queryset(organization, filters, now=now).iterator(chunk_size=500):
        chunk.append(values)
        if len(chunk) == 500:
            yield from _csv_chunk(chunk, organization, now)
            chunk = []
    yield from _csv_chunk(chunk, organization, now)


def _csv_chunk(chunk, organization, now):
    for row in inventory_rows(chunk, org_slug=organization.slug, now=now):
        data = row.as_dict()
        data["scopes"] = " ".join(data["scopes"])
        data["flags"] = " ".join(data["flags"])
        yield [data[c] for c in CSV_COLUMNS]


@authorized("inventory.read")
def inventory_csv(request: HttpRequest) -> HttpResponse:
    """Export the inventory rows matching the page's filters as CSV (every page)."""
    organization = request.organization
    form, filters = inventory_filters(request, organization_members(organization))
    refusal = invalid_filter_response(form)
    if refusal is not None:
        return refusal
    response = StreamingHttpResponse(
        _csv_lines(organization, filters), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{organization.slug}-credential-inventory.csv"'
    return response


# --- approvals ------------------------------------------------------------------------------


#: Waiting requests listed on the approvals page (oldest first); the rest are counted and linked.
APPROVALS_SHOWN = 100


@authorized("requests.queue")
def approvals(request: HttpRequest) -> HttpResponse:
    """List the requests waiting for a decision and the latest decisions."""
    organization = request.organization
    waiting = pending_requests_for(organization)
    pending = list(waiting[:APPROVALS_SHOWN])
    decided = list(
        requests_for(organization).exclude(state=RequestState.PENDING).order_by("-decided_at", "-id")[:20]
    )
    refs = request_credential_refs([*pending, *decided])
    for item in [*pending, *decided]:
        kind = get_kind(item.kind)
        item.kind_label = kind.label
        item.path = kind.detail_path(
            organization.slug, item.object_id, refs.get((item.kind, item.object_id), "")
        )
    return render(
        request,
        "credentials/governance/approvals.html",
        {
            "pending": pending,
            # More than shown: the page says so and links to all of them in the inventory.
            "pending_total": waiting.count() if len(pending) == APPROVALS_SHOWN else len(pending),
            "decided": decided,
            "form": DecisionForm(),
        },
    )


def _request_or_404(request: HttpRequest, request_id: int):
    return get_object_or_404(requests_for(request.organization), pk=request_id)


@require_POST
@authorized("requests.decide")
def request_decide(request: HttpRequest, request_id: int) -> HttpResponse:
    """Approve or deny one request, with an optional comment (never your own)."""
    item = _request_or_404(request, request_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        # The decision is a hidden input the buttons set: its error only says it is missing; any
        # other field's (the comment's) is named as it is, as the cut-over form does.
        if "decision" in form.errors:
            messages.error(request, "Choose approve or deny.")
        else:
            messages.error(request, form_errors_text(form))
        return redirect("org-approvals", org_slug=request.organization.slug)
    decide = (
        credential_request_approve if form.cleaned_data["decision"] == "approve" else credential_request_deny
    )
    flash_outcome(
        request,
        lambda: decide(request=item, actor=request.user, comment=form.cleaned_data["comment"]),
        lambda decided: f"“{decided.credential_label}”: request {decided.state}.",
    )
    return redirect("org-approvals", org_slug=request.organization.slug)


@authorized("requests.cancel")
@confirm_page(
    "Cancel your request?",
    lambda _request, item: (
        f"“{item.credential_label}” will never get a secret."
        if item.request_type == RequestType.CREATE
        else f"The scopes of “{item.credential_label}” stay as they are."
    ),
    "Cancel my request",
    target=_request_or_404,
    back=lambda _request, item: credential_path(credential_for_request(item)),
)
def request_cancel(request: HttpRequest, request_id: int) -> HttpResponse:
    """Withdraw your own waiting request, from the credential's page (a GET asks first)."""
    item = _request_or_404(request, request_id)
    flash_outcome(
        request,
        lambda: credential_request_cancel(request=item, actor=request.user),
        lambda cancelled: f"“{cancelled.credential_label}”: your request was cancelled.",
    )
    return redirect(credential_path(credential_for_request(item)))


@authorized("requests.withdraw")
@confirm_page(
    lambda _request, item: f"Revoke “{item.credential_label}”?",
    "It stops working at once. It cannot be undone.",
    "Revoke the credential",
    target=_request_or_404,
    back=lambda request, _item: reverse("org-approvals", kwargs={"org_slug": request.organization.slug}),
)
def request_revoke(request: HttpRequest, request_id: int) -> HttpResponse:
    """Revoke the credential a request is about, from the approvals screen (denying a waiting request).

    A GET asks first.
    """
    item = _request_or_404(request, request_id)
    credential = credential_for_request(item)

    def revoke() -> None:
        if item.state == RequestState.PENDING:
            credential_request_deny(request=item, actor=request.user, comment="Revoked by an approver.")
        if not (item.state == RequestState.PENDING and item.request_type == RequestType.CREATE):
            reviews.credential_revoke(
                credential=credential, actor=request.user, reason="Revoked by an approver."
            )

    flash_outcome(request, revoke, lambda _: f"“{credential.name}” was revoked.")
    return redirect("org-approvals", org_slug=request.organization.slug)


# --- policy ---------------------------------------------------------------------------------


@authorized("policy.change")
def policy(request: HttpRequest) -> HttpResponse:
    """Show and edit the organisation's credential policy."""
    current = org_policy.policy_for(request.organization)
    form = PolicyForm(request.POST or None, instance=current)
    if request.method == "POST":
        if form.is_valid():
            values = {name: form.cleaned_data[name] for name in form.fields}
            # PolicyForm validated on a copy; the service locks the row and audits the change.
            org_policy.policy_update(organization=request.organization, actor=request.user, **values)
            messages.success(request, "The credential policy was saved.")
            return redirect("org-policy", org_slug=request.organization.slug)
        return render(request, "credentials/governance/policy.html", {"form": form}, status=400)
    return render(request, "credentials/governance/policy.html", {"form": form})


# --- one credential -------------------------------------------------------------------------


def credential_or_404(request: HttpRequest, kind_key: str, kwargs: dict):
    """Return the organisation's credential of `kind_key` named by the URL kwargs, or raise Http404."""
    kind = get_kind(kind_key)
    try:
        return kind.model.objects.select_related("organization", "owner").get(
            organization=request.organization, **{kind.lookup_field: kwargs[kind.url_kwarg]}
        )
    except (kind.model.DoesNotExist, ValueError):
        raise Http404("No such credential.") from None


def credential_urls(kind, org_slug: str, credential) -> dict[str, str]:
    """Return the governance URLs a kind has for one credential (recertify, reassign, scopes, usage CSV…)."""
    kwargs = {"org_slug": org_slug, kind.url_kwarg: getattr(credential, kind.lookup_field)}
    names = {
        action: f"{kind.url_name}-{action}"
        for action in ("recertify", "reassign", "restore", "scopes", "narrow", "policy")
    }
    names["usage_csv"] = f"{kind.url_name}-usage-csv"
    if kind.issue_url_name:
        names["issue"] = kind.issue_url_name
    urls = {}
    for action, name in names.items():
        try:
            urls[action] = reverse(name, kwargs=kwargs)
        except NoReverseMatch:  # a kind without this action (a federated identity has no scopes)
            continue
    return urls


def governance_context(request: HttpRequest, credential) -> dict:
    """Return what the governance panel on a credential's page needs."""
    kind = kind_of(credential)
    history = list(requests_for_credential(credential))
    is_owner = credential.owner_id == request.user.pk
    is_manager = may(request, f"{kind.key}.reassign")
    approved_create = any(
        r.request_type == RequestType.CREATE and r.state == RequestState.APPROVED for r in history
    )
    # Its worked-out state: an expired key (a rotated-away predecessor, say) has nothing to review.
    reviewable = credential.state == CredentialStatus.ACTIVE or (
        credential.status == CredentialStatus.SUSPENDED
        and credential.suspension_reason == SuspensionReason.REVIEW_OVERDUE
    )
    scopes = sorted(kind.scopes_of(credential))
    pending = next((r for r in history if r.state == RequestState.PENDING), None)
    return {
        "gov_kind": kind,
        "gov_credential": credential,
        "gov_history": history,
        "gov_pending": pending,
        "gov_can_cancel": pending is not None and pending.requester_id == request.user.pk,
        "gov_cancelled": any(
            r.request_type == RequestType.CREATE and r.state == RequestState.CANCELLED for r in history
        ),
        "gov_can_issue": is_owner and credential.status == CredentialStatus.PENDING and approved_create,
        "gov_can_review": may(request, f"{kind.key}.recertify", owner_id=credential.owner_id) and reviewable,
        "gov_can_request_scopes": may(request, f"{kind.key}.scopes", owner_id=credential.owner_id)
        and credential.status == CredentialStatus.ACTIVE
        and bool(kind.url_name),
        "gov_can_reassign": is_manager and credential.status in common.LIVE_STATUSES,
        # Staff's own suspensions (`manual`) and leaked secrets are lifted by staff only, in the admin.
        "gov_can_restore": may(request, f"{kind.key}.restore", owner_id=credential.owner_id)
        and reviews.restorable_by_organization(credential),
        "gov_review_form": RecertifyForm(current_scopes=scopes, prefix="review") if reviewable else None,
        "gov_reassign_form": ReassignForm(members=organization_members(request.organization), prefix="owner")
        if is_manager
        else None,
        "gov_can_change_policy": may(request, f"{kind.key}.policy", owner_id=credential.owner_id),
        "gov_policy_form": _policy_form(request, credential),
        **insight_context(request, credential),
        "gov_url_kwarg": getattr(credential, kind.lookup_field),
        "gov_urls": credential_urls(kind, request.organization.slug, credential),
        "leak_reports": list(leak_reports_for_credential(credential)[:20]),
        "now": timezone.now(),
    }


def credential_edit_page(
    request: HttpRequest, credential, *, kind_label: str, saved: str, update: Callable[..., object]
) -> HttpResponse:
    """Rename or describe a credential of any kind; `update(actor=, via=, name=, description=)` saves."""
    initial = {"name": credential.name, "description": credential.description}
    form = CredentialEditForm(request.POST if request.method == "POST" else None, initial=initial)
    back = credential_path(credential)
    if request.method == "POST" and form.is_valid():
        try:
            update(actor=request.user, via="dashboard", **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, saved)
            return redirect(back)
    context = {"form": form, "credential": credential, "kind_label": kind_label, "back": back}
    return render(request, "credentials/credential_edit.html", context, status=400 if form.errors else 200)


def _back(credential) -> HttpResponse:
    return redirect(credential_path(credential))


@require_POST
@authorized("{kind}.recertify")
def recertify(request: HttpRequest, kind: str, **kwargs) -> HttpResponse:
    """Record the owner's review, optionally narrowing the scopes."""
    credential = credential_or_404(request, kind, kwargs)
    check(request, owner_id=credential.owner_id)
    form = RecertifyForm(request.POST, prefix="review")
    if not form.is_valid():
        stale = form.errors.get("shown")
        messages.error(request, stale[0] if stale else "Choose among the scopes the page listed.")
        return _back(credential)
    flash_outcome(
        request,
        lambda: reviews.credential_recertify(
            credential=credential,
            actor=request.user,
            scopes=[s.name for s in form.cleaned_data["scopes"]],
            shown=form.cleaned_data["shown"],
        ),
        f"“{credential.name}” was reviewed. The next review is scheduled.",
        forbidden={"not_owner"},
    )
    return _back(credential)


@require_POST
@authorized("{kind}.reassign")
def reassign(request: HttpRequest, kind: str, **kwargs) -> HttpResponse:
    """Give a credential a new owner (clears an orphan mark and restores an orphan suspension)."""
    credential = credential_or_404(request, kind, kwargs)
    form = ReassignForm(request.POST, members=organization_members(request.organization), prefix="owner")
    if not form.is_valid():
        messages.error(request, "Choose a member of the organisation.")
        return _back(credential)
    owner = form.cleaned_data["owner"]
    flash_outcome(
        request,
        lambda: ownership.credential_reassign_owner(credential=credential, owner=owner, actor=request.user),
        lambda _: f"“{credential.name}” is now owned by {owner.email}.",
    )
    return _back(credential)


@require_POST
@authorized("{kind}.restore")
def restore(request: HttpRequest, kind: str, **kwargs) -> HttpResponse:
    """Lift an `orphaned` or `review_overdue` suspension; its grace starts again from now."""
    credential = credential_or_404(request, kind, kwargs)
    flash_outcome(
        request,
        lambda: reviews.credential_restore(credential=credential, actor=request.user),
        _restored_message,
        forbidden={"not_manager"},
    )
    return _back(credential)


def _restored_message(credential) -> str:
    """Return what a restore did, and what still has to be done before the grace runs out again."""
    policy = org_policy.policy_for(credential.organization)
    done = f"“{credential.name}” was restored: its suspension is lifted."
    tasks = []
    if credential.orphaned_at is not None:
        tasks.append(f"assign a new owner within {policy.orphan_grace_days} days")
    if credential.review_overdue:
        tasks.append(f"review it within {policy.overdue_grace_days} days")
    if not tasks:
        return done
    todo = " and ".join(tasks)
    if credential.orphaned_at is not None:
        return f"{done} Its owner has still left: {todo}, or it is suspended again."
    return f"{done} {todo[0].upper()}{todo[1:]}, or it is suspended again."


@require_POST
@authorized("{kind}.policy")
def runtime_policy(request: HttpRequest, kind: str, **kwargs) -> HttpResponse:
    """Change a credential's IP allowlist and rate limit (a change of power: recent sign-in needed)."""
    credential = credential_or_404(request, kind, kwargs)
    check(request, owner_id=credential.owner_id)
    stale = step_up_redirect(request)
    if stale is not None:
        return stale
    form = RuntimePolicyForm(request.POST, prefix="policy")
    if not form.is_valid():
        return _policy_refused(request, credential, {})
    try:
        edits.credential_policy_set(
            credential=credential,
            actor=request.user,
            allowed_ips=form.cleaned_data["allowed_ips"],
            rate_limit=form.cleaned_data["rate_limit"],
        )
    except ValidationError as exc:
        if getattr(exc, "code", None) == "rotated":
            # Not the entries' fault: the credential was rotated, perhaps after this page was read.
            messages.error(request, f"The runtime policy was not saved. {refusal_text(exc)}")
            return _back(credential)
        # The organisation's rules (an allowlist on live credentials, a ceiling) refuse it.
        return _policy_refused(
            request, credential, exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        )
    messages.success(request, "The runtime policy was saved; it applies from the next request.")
    return _back(credential)


#: The session key of a refused runtime-policy form, shown again on the credential's page.
POLICY_DRAFT = "gov_policy_draft"


def _policy_refused(request: HttpRequest, credential, errors: dict[str, list[str]]) -> HttpResponse:
    """Go back to the credential's page with the form as it was sent, its errors on its fields.

    The page belongs to the credential's kind, so the entries (an allowlist, a rate limit: never
    a secret) and the service's refusal travel in the session, once (`governance_context`).
    """
    request.session[POLICY_DRAFT] = {
        "path": credential_path(credential),
        "data": {name: request.POST.getlist(name) for name in request.POST if name.startswith("policy-")},
        "errors": errors,
    }
    messages.error(request, "The runtime policy was not saved: correct the form below.")
    return _back(credential)


def _policy_form(request: HttpRequest, credential) -> RuntimePolicyForm:
    """Return the credential's runtime-policy form: the one refused just now, or its stored values."""
    draft = request.session.get(POLICY_DRAFT)
    if draft and draft.get("path") == credential_path(credential):
        del request.session[POLICY_DRAFT]
        form = RuntimePolicyForm(MultiValueDict(draft["data"]), prefix="policy")
        if form.is_valid():
            for field, errors in draft["errors"].items():
                form.add_error(field if field in form.fields else None, errors)
        return form
    return RuntimePolicyForm(initial=RuntimePolicyForm.initial_for(credential), prefix="policy")


@authorized("{kind}.scopes")
def request_scopes(request: HttpRequest, kind: str, **kwargs) -> HttpResponse:
    """Change a credential's scopes: narrowing applies now, widening may need an approval."""
    credential = credential_or_404(request, kind, kwargs)
    governed = kind_of(credential)
    check(request, owner_id=credential.owner_id)
    current = sorted(governed.scopes_of(credential))
    needs_approval = org_policy.policy_for(request.organization).approve_scope_increases
    form = ScopeRequestForm(request.POST or None, initial={"scopes": current}, current_scopes=current)
    if request.method == "POST" and form.is_valid():
        shown = form.cleaned_data["shown"]
        # What the page changed, made to the scopes as they are now (one granted since it was read stays).
        wanted = edits.scope_change(current, (s.name for s in form.cleaned_data["scopes"]), shown)
        if set(wanted) - set(current):
            # Widening changes who holds power: the table asks for a recent sign-in.
            check(request, f"{governed.key}.scopes_widen", owner_id=credential.owner_id)
            stale = step_up_redirect(request)
            if stale is not None:
                return stale
        try:
            if org_policy.scope_increase_needs_approval(request.organization, current, wanted):
                if set(current) - set(wanted):
                    raise ValidationError(
                        {"scopes": "Remove scopes with a review first, then request the increase."}
                    )
                credential_request_create(
                    credential=credential,
                    requester=request.user,
                    request_type=RequestType.SCOPE_INCREASE,
                    justification=form.cleaned_data["justification"],
                    requested_scopes=wanted,
                )
                messages.success(
                    request, "Your request was sent. The current scopes keep working until it is approved."
                )
            else:
                edits.credential_scopes_set(
                    credential=credential,
                    scopes=(s.name for s in form.cleaned_data["scopes"]),
                    shown=shown,
                    actor=request.user,
                )
                messages.success(request, "The scopes were changed.")
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return _back(credential)
    context = {
        "credential": credential,
        "kind": governed,
        "form": form,
        "needs_approval": needs_approval,
        "current": current,
    }
    return render(request, "credentials/governance/scopes.html", context, status=400 if form.errors else 200)
