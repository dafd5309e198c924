"""Dashboard pages for M2M applications: list, create, detail, rotate, revoke, and public keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from credentials.api_keys.selectors import api_keys_for
from credentials.governance import approvals, org_policy
from credentials.governance.forms import JustificationField
from credentials.governance.views import credential_edit_page, governance_context
from portal.confirm import confirm_page
from portal.outcomes import add_service_errors, flash_outcome, form_errors_text, refusal_text
from portal.reveal import secret_reveal
from portal.selectors import audit_events_for_target
from portal.submissions import submission_of
from portal.tenancy import authorized, check, found_or_404, may
from tokens.clients import moves, services
from tokens.clients.forms import (
    ApiKeyMoveForm,
    M2MAppCreateForm,
    PublicKeyAddForm,
    SecretRotateForm,
    TokenQuotaForm,
)
from tokens.clients.selectors import (
    client_public_keys_for,
    client_secrets_for,
    federated_identities_for,
    m2m_app_for,
    m2m_apps_for,
    untried_trust_ids,
)
from tokens.models import MAX_TRUSTS_PER_ISSUER, ClientCredential, M2MApplication


def application_or_404(request: HttpRequest, app_id: int) -> M2MApplication:
    """Return the organisation's application, or 404 (another organisation's too)."""
    return found_or_404(m2m_app_for, request.organization, app_id, missing="No such application.")


def _require_manage(request: HttpRequest, application: M2MApplication) -> None:
    # The view's action (portal.authz): its owner, or an organisation owner or admin.
    check(request, owner_id=application.owner_id)


def _managed_application(request: HttpRequest, app_id: int) -> M2MApplication:
    """Return the application if the member may act on it: 404 for another organisation's, else 403."""
    application = application_or_404(request, app_id)
    _require_manage(request, application)
    return application


def _managed_credential(
    request: HttpRequest, app_id: int, *, rows: Callable[[M2MApplication], QuerySet], pk: int, missing: str
) -> ClientCredential:
    """Return one secret or public key of an application its managers act on (404, 403 as above)."""
    application = application_or_404(request, app_id)
    credential = rows(application).filter(pk=pk).first()
    if credential is None:
        raise Http404(missing)
    _require_manage(request, application)
    return credential


def _offline(application: M2MApplication) -> str:
    """What a revocation cannot reach: tokens already issued, where a service checks them offline."""
    return (
        "Services that validate tokens offline, against the JWKS, accept tokens already issued until "
        f"they expire (at most {application.token_lifetime} seconds)."
    )


def _app_path(request: HttpRequest, app_id: int) -> str:
    return reverse("org-app-detail", kwargs={"org_slug": request.organization.slug, "app_id": app_id})


def _reveal(request: HttpRequest, application: M2MApplication, secret: str, *, created: bool) -> HttpResponse:
    token_url = request.build_absolute_uri(reverse("oauth-token"))
    curl_command = format_html(
        "curl -s -u '{}:{}' -d grant_type=client_credentials {}", application.client_id, secret, token_url
    )
    return secret_reveal(
        request,
        "tokens/app_secret_reveal.html",
        {
            "application": application,
            "client_secret": secret,
            "created": created,
            "curl_command": curl_command,
        },
        status=201 if created else 200,
    )


def _already_done(request: HttpRequest, app_id: str) -> HttpResponse:
    # The same form was sent again (a reload, a double click): show what the first sending made.
    messages.info(
        request, "That form was already sent; a secret is shown only once and cannot be shown again."
    )
    if not app_id:  # the first sending is still being handled
        return redirect("org-apps", org_slug=request.organization.slug)
    return redirect("org-app-detail", org_slug=request.organization.slug, app_id=app_id)


def _back(request: HttpRequest, application: M2MApplication) -> HttpResponse:
    return redirect("org-app-detail", org_slug=request.organization.slug, app_id=application.pk)


def _revoke_one(
    request: HttpRequest,
    credential: ClientCredential,
    *,
    revoke: Callable[[ClientCredential], object],
    success: Callable[[ClientCredential], str],
) -> HttpResponse:
    """Revoke one secret or public key (found by `_managed_credential`), then show its application."""
    flash_outcome(request, lambda: revoke(credential), success(credential))
    return redirect(_app_path(request, credential.application_id))


def _secret(request: HttpRequest, app_id: int, secret_id: int) -> ClientCredential:
    return _managed_credential(
        request, app_id, rows=client_secrets_for, pk=secret_id, missing="No such secret."
    )


def _public_key(request: HttpRequest, app_id: int, public_key_id: int) -> ClientCredential:
    return _managed_credential(
        request, app_id, rows=client_public_keys_for, pk=public_key_id, missing="No such key."
    )


@authorized("m2m_app.view")
def app_list(request: HttpRequest) -> HttpResponse:
    """List the organisation's M2M applications."""
    return render(request, "tokens/app_list.html", {"applications": m2m_apps_for(request.organization)})


@authorized("m2m_app.create")
def app_create(request: HttpRequest) -> HttpResponse:
    """Create an application and show its client id and secret once."""
    form = M2MAppCreateForm(
        request.POST or None,
        organization=request.organization,
        user=request.user,
        can_choose_owner=may(request, "m2m_app.create"),
        owner_role=None if may(request, "m2m_app.create") else request.membership.role,
        # The credential chooser links here with its recommendation preselected.
        initial={"auth_method": request.GET.get("auth_method")}
        if request.GET.get("auth_method") in M2MApplication.AuthMethod.values
        else {},
    )
    needs_approval = org_policy.approval_required(request.organization, "m2m_app")
    if needs_approval:
        form.fields["justification"] = JustificationField()
    if request.method == "POST" and form.is_valid() and needs_approval and form.cleaned_data["public_key"]:
        form.add_error(
            "public_key", "Register the public key on the application's page once the request is approved."
        )
    elif request.method == "POST" and form.is_valid():
        submission = submission_of(request, form)
        used = submission.begin()
        if used is not None:
            return _already_done(request, used)
        try:
            _application, response = submission.run(
                lambda: (_request_app if needs_approval else _create_app)(request, form),
                remember=lambda made: made[0].pk,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return response
    status = 400 if request.method == "POST" else 200
    return render(
        request, "tokens/app_create.html", {"form": form, "needs_approval": needs_approval}, status=status
    )


#: What the create form gives the create and the request services alike.
_APP_FIELDS = (
    "name",
    "description",
    "owner",
    "audiences",
    "token_lifetime",
    "auth_method",
    "allowed_ips",
    "rate_limit",
    "token_quota",
)


def _app_fields(request: HttpRequest, form: M2MAppCreateForm) -> dict:
    data = form.cleaned_data
    fields = {name: data[name] for name in _APP_FIELDS}
    return {**fields, "organization": request.organization, "scopes": list(data["scopes"])}


def _request_app(request: HttpRequest, form: M2MAppCreateForm) -> tuple[M2MApplication, HttpResponse]:
    """File the approval request for a new application (no secret yet); a refusal raises ValidationError."""
    application, _request = services.m2m_app_request(
        requester=request.user,
        justification=form.cleaned_data["justification"],
        **_app_fields(request, form),
    )
    messages.success(
        request,
        f"Your request for “{application.name}” was sent to the organisation's approvers. "
        + (
            "Once approved, its owner registers its public key here."
            if application.uses_private_key_jwt
            else "Once approved, its owner generates the client secret here."
        ),
    )
    return application, _back(request, application)


def _create_app(request: HttpRequest, form: M2MAppCreateForm) -> tuple[M2MApplication, HttpResponse]:
    """Create the application and show its secret once; a refusal raises ValidationError."""
    application, secret = services.m2m_app_create(
        actor=request.user, public_key=form.cleaned_data["public_key"], **_app_fields(request, form)
    )
    if secret is None:
        messages.success(
            request,
            f"“{application.name}” was created. It has no secret: it signs its token requests "
            "with a private key whose public key is registered below.",
        )
        return application, _back(request, application)
    return application, _reveal(request, application, secret, created=True)


@authorized("m2m_app.view")
def app_detail(request: HttpRequest, app_id: int) -> HttpResponse:
    """Show an application, its secrets or public keys, and its audit trail."""
    return _detail(request, application_or_404(request, app_id))


def _detail(
    request: HttpRequest,
    application: M2MApplication,
    *,
    key_form: PublicKeyAddForm | None = None,
    quota_form: TokenQuotaForm | None = None,
    status=200,
) -> HttpResponse:
    public_keys = list(client_public_keys_for(application).select_related("created_by"))
    # The snippet signs with the newest live key's algorithm; authlib wants a joserfc key for EC/OKP.
    snippet_alg = next((k.algorithm for k in public_keys if k.is_live), "RS256")
    context = {
        "application": application,
        "secrets": client_secrets_for(application).select_related("created_by"),
        "public_keys": public_keys,
        "key_form": key_form or PublicKeyAddForm(),
        # What an assertion's `aud` must name: the issuer's token endpoint, not this page's host.
        "token_url": settings.PORTAL_ISSUER + reverse("oauth-token"),
        "snippet_alg": snippet_alg,
        "snippet_key_class": {"ES256": "ECKey", "ES384": "ECKey", "EdDSA": "OKPKey"}.get(snippet_alg, ""),
        "rotate_form": SecretRotateForm(
            initial={
                "overlap_hours": org_policy.policy_for(request.organization).default_rotation_overlap_hours
            }
        ),
        "can_manage": may(request, "m2m_app.revoke", owner_id=application.owner_id),
        "events": audit_events_for_target(request.organization, application)[:20],
        "exchange_lifetime": application.exchange_token_lifetime,
        "federated_identities": federated_identities_for(application),
        "untried_trusts": untried_trust_ids(application),
        "max_trusts": MAX_TRUSTS_PER_ISSUER,
        "quota_form": quota_form
        or TokenQuotaForm(initial=TokenQuotaForm.initial_for(application), prefix="quota"),
        "can_change_quota": may(request, "m2m_app.policy", owner_id=application.owner_id),
        "global_token_rate": settings.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE,
        # A refused form renders this page at its own POST-only URL: links (the usage periods) go here.
        "base_url": reverse(
            "org-app-detail", kwargs={"org_slug": request.organization.slug, "app_id": application.pk}
        ),
        **governance_context(request, application),
    }
    return render(request, "tokens/app_detail.html", context, status=status)


@require_POST
@authorized("m2m_app.rotate")
def app_secret_rotate(request: HttpRequest, app_id: int) -> HttpResponse:
    """Add a new secret, schedule the current ones to stop after the overlap, show the new one once."""
    application = application_or_404(request, app_id)
    _require_manage(request, application)
    form = SecretRotateForm(request.POST)
    if not form.is_valid():
        # Besides the overlap, the form's hidden one-use token can be refused (too long, a NUL):
        # that is named as it is, not reported as an overlap out of range.
        if "overlap_hours" in form.errors:
            messages.error(request, "Choose an overlap between 0 and 168 hours.")
        else:
            messages.error(request, form_errors_text(form))
        return _back(request, application)
    submission = submission_of(request, form)
    if submission.begin() is not None:
        return _already_done(request, str(application.pk))
    try:
        _secret, plaintext = submission.run(
            lambda: services.client_secret_rotate(
                application=application,
                overlap=timedelta(hours=form.cleaned_data["overlap_hours"]),
                actor=request.user,
            ),
            remember=lambda _made: application.pk,
        )
    except ValidationError as exc:
        messages.error(request, refusal_text(exc))
        return _back(request, application)
    return _reveal(request, application, plaintext, created=False)


@authorized("m2m_app.revoke")
@confirm_page(
    lambda _request, secret: f"Revoke secret {secret.hint}…?",
    lambda _request, secret: (
        "The portal refuses it and the tokens minted with it at once. "
        f"{_offline(secret.application)} It cannot be undone."
    ),
    "Revoke secret",
    target=_secret,
    back=lambda request, secret: _app_path(request, secret.application_id),
)
def app_secret_revoke(request: HttpRequest, app_id: int, secret_id: int) -> HttpResponse:
    """Revoke one secret at once (a GET asks first)."""
    return _revoke_one(
        request,
        _secret(request, app_id, secret_id),
        revoke=lambda secret: services.client_secret_revoke(secret=secret, actor=request.user),
        success=lambda secret: (
            f"Secret {secret.hint}… was revoked. Tokens minted with it stop working now. "
            f"{_offline(secret.application)}"
        ),
    )


@authorized("m2m_app.update")
def app_edit(request: HttpRequest, app_id: int) -> HttpResponse:
    """Rename or describe an application."""
    application = application_or_404(request, app_id)
    _require_manage(request, application)
    return credential_edit_page(
        request,
        application,
        kind_label="M2M application",
        saved="The application's name and description were saved.",
        update=lambda **changes: services.m2m_app_update(application=application, **changes),
    )


@require_POST
@authorized("m2m_app.policy")
def app_token_quota(request: HttpRequest, app_id: int) -> HttpResponse:
    """Change the application's token issuance quota (a change of power, like its runtime policy)."""
    application = application_or_404(request, app_id)
    check(request, owner_id=application.owner_id)
    form = TokenQuotaForm(request.POST, prefix="quota")
    if not form.is_valid():
        # The form sits low on the page and the page opens at its top: say so there, as the
        # runtime-policy form does.
        messages.error(request, "The token quota was not saved: correct the form below.")
        return _detail(request, application, quota_form=form, status=400)
    flash_outcome(
        request,
        lambda: services.m2m_app_token_quota_set(
            application=application, actor=request.user, token_quota=form.cleaned_data["token_quota"]
        ),
        "The token quota was saved; it applies from the next token request.",
    )
    return _back(request, application)


@authorized("m2m_app.revoke")
@confirm_page(
    lambda _request, application: f"Revoke “{application.name}”?",
    lambda _request, application: (
        "The portal refuses all its secrets, keys and tokens at once. "
        f"{_offline(application)} It cannot be undone."
    ),
    "Revoke application",
    target=_managed_application,
    back=lambda request, application: _app_path(request, application.pk),
)
def app_revoke(request: HttpRequest, app_id: int) -> HttpResponse:
    """Revoke the application, its secrets and its tokens at once (a GET asks first)."""
    application = _managed_application(request, app_id)
    flash_outcome(
        request,
        lambda: services.m2m_app_revoke(application=application, actor=request.user),
        f"{application.name} was revoked. Its secrets and tokens stop working now. {_offline(application)}",
    )
    return _back(request, application)


@require_POST
@authorized("m2m_app.issue")
def app_issue_secret(request: HttpRequest, app_id: int) -> HttpResponse:
    """Generate the first client secret of an approved application, once, and show it (owner only)."""
    application = application_or_404(request, app_id)
    check(request, owner_id=application.owner_id)
    try:
        application, plaintext = approvals.credential_secret_issue(credential=application, actor=request.user)
    except ValidationError as exc:
        messages.error(request, refusal_text(exc))
        return _back(request, application)
    return _reveal(request, application, plaintext, created=True)


@require_POST
@authorized("m2m_app.rotate")
def app_key_add(request: HttpRequest, app_id: int) -> HttpResponse:
    """Register a public key (private_key_jwt); optionally stop the current keys after an overlap."""
    application = application_or_404(request, app_id)
    _require_manage(request, application)
    form = PublicKeyAddForm(request.POST)
    if form.is_valid():
        submission = submission_of(request, form)
        if submission.begin() is not None:
            return _already_done(request, str(application.pk))
        data = form.cleaned_data
        overlap = timedelta(hours=data["overlap_hours"]) if data["overlap_hours"] is not None else None
        try:
            key = submission.run(
                lambda: services.client_public_key_add(
                    application=application,
                    jwk_or_pem=data["public_key"],
                    algorithm=data["algorithm"] or None,
                    overlap=overlap,
                    actor=request.user,
                ),
                remember=lambda _key: application.pk,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Key {key.short_kid}… ({key.algorithm}) was registered.")
            return _back(request, application)
    messages.error(request, "The public key was not registered: correct the form below.")
    return _detail(request, application, key_form=form, status=400)


@authorized("m2m_app.rotate")
@confirm_page(
    lambda _request, key: f"Revoke key {key.short_kid}…?",
    lambda _request, key: (
        "The portal refuses assertions signed with it and the tokens minted with it at "
        f"once. {_offline(key.application)} It cannot be undone."
    ),
    "Revoke key",
    target=_public_key,
    back=lambda request, key: _app_path(request, key.application_id),
)
def app_key_revoke(request: HttpRequest, app_id: int, public_key_id: int) -> HttpResponse:
    """Revoke one public key at once (a GET asks first)."""
    return _revoke_one(
        request,
        _public_key(request, app_id, public_key_id),
        revoke=lambda key: services.client_public_key_revoke(public_key=key, actor=request.user),
        success=lambda key: (
            f"Key {key.short_kid}… was revoked. Tokens minted with it stop working now. "
            f"{_offline(key.application)}"
        ),
    )


@authorized("api_key.move")
def api_key_move(request: HttpRequest, key_id: str) -> HttpResponse:
    """Confirm, then move an API key to a new M2M application and show its client secret once.

    Served from `tokens` under the key's URL: the move creates an application, and `credentials`
    never imports `tokens`. Needs `api_key.move` on the key and `m2m_app.create` for its owner.
    """
    api_key = get_object_or_404(api_keys_for(request.organization), key_id=key_id)
    check(request, owner_id=api_key.owner_id)
    check(request, "m2m_app.create", owner_id=api_key.owner_id)
    # A denied or withdrawn move never happened: the key may be moved again (tokens.clients.moves).
    moved_to = (
        M2MApplication.objects.filter(moved_from_key=api_key)
        .exclude(status=M2MApplication.Status.DENIED)
        .first()
    )
    needs_approval = org_policy.approval_required(request.organization, "m2m_app")
    form = ApiKeyMoveForm(
        request.POST if request.method == "POST" else None,
        initial={"name": api_key.name},
        needs_approval=needs_approval,
    )
    if moved_to is None and form.is_valid():
        try:
            move = moves.api_key_move_to_m2m_app(
                api_key=api_key,
                actor=request.user,
                name=form.cleaned_data["name"],
                justification=form.cleaned_data.get("justification", ""),
                via="dashboard",
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if move.pending:
                messages.success(
                    request,
                    f"“{move.application.name}” was requested from the organisation's approvers. Once "
                    "approved, its owner generates the client secret on its page. The key keeps working.",
                )
                return redirect(
                    "org-app-detail", org_slug=request.organization.slug, app_id=move.application.pk
                )
            return _reveal(request, move.application, move.client_secret, created=True)
    return render(
        request,
        "tokens/api_key_move.html",
        {"api_key": api_key, "moved_to": moved_to, "needs_approval": needs_approval, "form": form},
        status=400 if moved_to is None and form.is_bound and form.errors else 200,
    )
