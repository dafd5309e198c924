"""Dashboard actions of a moved key's cut-over: choose the quiet period, revoke once it has passed.

The cut-over itself is shown on the key's page (`credentials.api_keys.views.api_key_detail`, template
`credentials/_cutover.html`). Both actions are a revoke in effect, so they are authorised as
`api_key.revoke` (portal.authz). A key that was never moved has no cut-over: the services
refuse it with a message saying so.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from credentials import usage
from credentials.api_keys.cutover import api_key_cutover_complete, api_key_cutover_set, cutover_for
from credentials.api_keys.forms import CutoverForm
from credentials.api_keys.models import ApiKey
from credentials.api_keys.selectors import api_keys_for
from portal.confirm import confirm_page
from portal.outcomes import flash_outcome, form_errors_text
from portal.tenancy import authorized, check


def cutover_context(api_key: ApiKey) -> dict:
    """Return what the cut-over panel on a moved key's page needs (nothing for a key never moved)."""
    cutover = cutover_for(api_key)
    if cutover is None:
        return {"cutover": None}
    return {
        "cutover": cutover,
        "cutover_usage": usage.usage_summary(
            organization_id=api_key.organization_id,
            kind="api_key",
            credential_id=api_key.key_id,
            hours=1,
            granularity="minute",
        ),
        "cutover_form": CutoverForm(
            prefix="cutover",
            initial={"quiet_hours": cutover.quiet_hours, "auto_revoke": cutover.auto_revoke},
        ),
    }


def _key(request: HttpRequest, key_id: str) -> ApiKey:
    api_key = get_object_or_404(api_keys_for(request.organization), key_id=key_id)
    check(request, owner_id=api_key.owner_id)
    return api_key


def _cutover_path(request: HttpRequest, api_key: ApiKey) -> str:
    page = reverse("org-api-key-detail", args=[request.organization.slug, api_key.key_id])
    return f"{page}#cutover"


def _back(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    return redirect(_cutover_path(request, api_key))


@require_POST
@authorized("api_key.revoke")
def api_key_cutover_view(request: HttpRequest, key_id: str) -> HttpResponse:
    """Save the quiet period and the automatic-revoke choice of a moved key."""
    api_key = _key(request, key_id)
    form = CutoverForm(request.POST, prefix="cutover")
    if not form.is_valid():
        messages.error(request, form_errors_text(form))
        return _back(request, api_key)
    flash_outcome(
        request,
        lambda: api_key_cutover_set(
            api_key=api_key, actor=request.user, via="dashboard", **form.cleaned_data
        ),
        lambda _: "The cut-over settings were saved.",
    )
    return _back(request, api_key)


@authorized("api_key.revoke")
@confirm_page(
    lambda _request, api_key: f"Revoke “{api_key.name}” now?",
    "Every request with this key is refused within a second: only its application works from now on. "
    "This cannot be undone.",
    "Revoke the key",
    target=_key,
    back=_cutover_path,
)
def api_key_cutover_revoke_view(request: HttpRequest, key_id: str) -> HttpResponse:
    """Revoke a moved key whose quiet period has passed (refused, with the reason, before then)."""
    api_key = _key(request, key_id)
    try:
        api_key_cutover_complete(api_key=api_key, actor=request.user, via="dashboard")
    except ValidationError as exc:
        messages.error(request, f"The key was not revoked. {' '.join(exc.messages)}")
    else:
        messages.success(request, f"“{api_key.name}” was revoked: the cut-over is complete.")
    return _back(request, api_key)
