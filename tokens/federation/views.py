"""Dashboard pages for federated identities: add a trust with a preset, see it, test a token, remove it.

"Test a token" runs every check of `tokens.federation.trust` on a pasted external token and shows
which pass, without issuing anything: the token is never stored, never logged (the POST
parameter is marked sensitive, so error reports omit it), never echoed back, and the page
is not cached.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from credentials.governance import approvals, org_policy
from credentials.governance.forms import JustificationField
from credentials.governance.views import governance_context
from portal.confirm import confirm_page
from portal.infra.responses import no_store
from portal.outcomes import add_service_errors, flash_outcome
from portal.selectors import audit_events_for_target
from portal.submissions import submission_of
from portal.tenancy import authorized, found_or_404, may
from tokens.clients.selectors import untried_trust_ids
from tokens.clients.views import application_or_404
from tokens.federation import services, trust
from tokens.federation.forms import FederatedIdentityForm, TokenTestForm
from tokens.federation.selectors import federated_identity_for
from tokens.models import FederatedIdentity, M2MApplication


def _get_identity(request: HttpRequest, identity_id: int) -> FederatedIdentity:
    return found_or_404(
        federated_identity_for, request.organization, identity_id, missing="No such federated identity."
    )


def _can_manage_app(request: HttpRequest, application: M2MApplication) -> bool:
    # The view's action (portal.authz): the application's owner, or an organisation owner or admin.
    return may(request, request.authz_action, owner_id=application.owner_id)


def _can_manage(request: HttpRequest, identity: FederatedIdentity) -> bool:
    # The trust's owner, its application's owner, or an organisation owner or admin.
    return any(
        may(request, "federated_id.revoke", owner_id=owner_id)
        for owner_id in (identity.owner_id, identity.application.owner_id)
    )


def _initial(preset_key: str) -> dict:
    preset = trust.PRESETS.get(preset_key)
    initial = {"preset": preset_key if preset else "custom", "audience": settings.PORTAL_ISSUER}
    if preset:
        initial.update(
            issuer=preset.issuer,
            subject=preset.subject_example,
            max_token_age=preset.max_token_age,
            conditions="\n".join(f"{name}=" for name in preset.conditions),
        )
    else:
        initial["max_token_age"] = FederatedIdentity._meta.get_field("max_token_age").default
    return initial


def _already_added(request: HttpRequest, application: M2MApplication, identity_id: str) -> HttpResponse:
    # The same form was sent again (a reload, a double click): show the trust the first sending made.
    if not identity_id:  # the first sending is still being handled
        messages.info(request, "That form was already sent; its trust appears here once it is added.")
        return redirect("org-app-detail", org_slug=request.organization.slug, app_id=application.pk)
    messages.info(request, "That form was already sent; this is the trust it added.")
    return redirect("org-federated-detail", org_slug=request.organization.slug, identity_id=identity_id)


@sensitive_post_parameters("jwks")
@authorized("federated_id.create")
def federated_create(request: HttpRequest, app_id: int) -> HttpResponse:
    """Add a trust to an application: choose a platform, then fill in (or adjust) what the preset proposes."""
    application = application_or_404(request, app_id)
    if not _can_manage_app(request, application):
        raise PermissionDenied("Only the application's owner or an organisation admin can add a trust.")
    preset_key = request.POST.get("preset") or request.GET.get("preset") or ""
    form = FederatedIdentityForm(request.POST or None, initial=_initial(preset_key))
    needs_approval = org_policy.approval_required(request.organization, services.FEDERATED_KIND)
    if needs_approval:
        form.fields["justification"] = JustificationField()
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        submission = submission_of(request, form)
        used = submission.begin()
        if used is not None:
            return _already_added(request, application, used)
        try:
            identity, approval = submission.run(
                lambda: services.federated_identity_create(
                    application=application,
                    actor=request.user,
                    issuer=data["issuer"],
                    subject=data["subject"],
                    audience=data["audience"],
                    # The preset proposes `NAME=` lines; one left empty is no condition. A value that
                    # merely ends in "=" (base64 padding) is one.
                    conditions=[c for c in data["conditions"] if "=" not in c or c.partition("=")[2].strip()],
                    max_token_age=data["max_token_age"],
                    preset=data["preset"],
                    jwks=data["jwks"],
                    name=data["name"],
                    justification=data.get("justification", ""),
                    via="dashboard",
                ),
                remember=lambda made: made[0].pk,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                "Your request for this trust was sent to the organisation's approvers."
                if approval
                else f"“{identity.name}” was added. Test a token from the platform below.",
            )
            return redirect(
                "org-federated-detail", org_slug=request.organization.slug, identity_id=identity.pk
            )
    context = {
        "application": application,
        "form": form,
        "needs_approval": needs_approval,
        "presets": trust.PRESETS.values(),
        "preset": trust.PRESETS.get(preset_key),
        "preset_key": preset_key,
    }
    return render(
        request, "tokens/federated_create.html", context, status=400 if request.method == "POST" else 200
    )


#: Why a trust that passes every check would still be refused (`untried_trust_ids`).
UNTRIED = (
    f"The application has more than {trust.MAX_TRUSTS_PER_ISSUER} active trusts of this issuer; the token "
    "endpoint tries the oldest of them only, so it never tries this one. Remove trusts no longer needed."
)


def _detail_context(request: HttpRequest, identity: FederatedIdentity) -> dict:
    return {
        "identity": identity,
        # A list, not the dict: the template language would read `conditions.items` as the
        # condition on a claim named "items" (a valid claim name) before the dict's method.
        "conditions": sorted((identity.conditions or {}).items()),
        "application": identity.application,
        "preset": trust.PRESETS.get(identity.preset),
        "can_manage": _can_manage(request, identity),
        "untried": identity.pk in untried_trust_ids(identity.application),
        "max_trusts": trust.MAX_TRUSTS_PER_ISSUER,
        "events": audit_events_for_target(request.organization, identity)[:20],
        **governance_context(request, identity),
    }


@authorized("federated_id.view")
def federated_detail(request: HttpRequest, identity_id: int) -> HttpResponse:
    """Show a trust: what it accepts, its governance, its activity."""
    identity = _get_identity(request, identity_id)
    return render(request, "tokens/federated_detail.html", _detail_context(request, identity))


@never_cache
@sensitive_post_parameters("token")
@authorized("federated_id.test")
def federated_test(request: HttpRequest, identity_id: int) -> HttpResponse:
    """Check a pasted external token against the trust and show each check; issue, store and log nothing."""
    identity = _get_identity(request, identity_id)
    if not _can_manage(request, identity):
        raise PermissionDenied("Only the trust's owner or an organisation admin can test tokens.")
    report = None
    form = TokenTestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # The form's widget never shows the token back, valid or not (NeverEchoedTextarea).
        report = trust.inspect(form.cleaned_data["token"].strip(), identity)
        if identity.pk in untried_trust_ids(identity.application):
            report.add("tried", False, UNTRIED)
    response = render(
        request,
        "tokens/federated_test.html",
        {"identity": identity, "application": identity.application, "form": form, "report": report},
    )
    return no_store(response)


def _removable_identity(request: HttpRequest, identity_id: int) -> FederatedIdentity:
    """Return the trust if the member may remove it: 404 for another organisation's, else 403."""
    identity = _get_identity(request, identity_id)
    if not _can_manage(request, identity):
        raise PermissionDenied("Only the trust's owner or an organisation admin can remove it.")
    return identity


@authorized("federated_id.revoke")
@confirm_page(
    lambda _request, identity: f"Remove “{identity.name}”?",
    "This issuer's tokens are refused at once, and every portal token the trust minted stops working. "
    "It cannot be undone.",
    "Remove trust",
    target=_removable_identity,
    back=lambda request, identity: reverse(
        "org-federated-detail", kwargs={"org_slug": request.organization.slug, "identity_id": identity.pk}
    ),
)
def federated_revoke(request: HttpRequest, identity_id: int) -> HttpResponse:
    """Remove a trust at once: its tokens are refused, and the tokens it minted stop validating."""
    identity = _removable_identity(request, identity_id)
    flash_outcome(
        request,
        lambda: services.federated_identity_revoke(identity=identity, actor=request.user),
        f"“{identity.name}” was removed; its tokens stopped working.",
    )
    return redirect("org-federated-detail", org_slug=request.organization.slug, identity_id=identity.pk)


@require_POST
@authorized("federated_id.issue")
def federated_activate(request: HttpRequest, identity_id: int) -> HttpResponse:
    """Activate an approved trust (its owner; there is no secret to show)."""
    identity = _get_identity(request, identity_id)
    flash_outcome(
        request,
        lambda: approvals.credential_secret_issue(credential=identity, actor=request.user),
        f"“{identity.name}” is active.",
        forbidden={"not_owner"},
    )
    return redirect("org-federated-detail", org_slug=request.organization.slug, identity_id=identity.pk)
