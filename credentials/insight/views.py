"""The one-click "Narrow to what is used" on a credential's page (both kinds)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from credentials.governance.registry import credential_path
from credentials.governance.views import credential_or_404
from credentials.insight.services import credential_scopes_narrow_to_used
from portal.outcomes import flash_outcome
from portal.tenancy import authorized, check


@require_POST
@authorized("{kind}.scopes")
def narrow_to_used(request: HttpRequest, kind: str, **kwargs) -> HttpResponse:
    """Remove the scopes no request needed in 30 days (a narrowing: no approval, audited)."""
    credential = credential_or_404(request, kind, kwargs)
    check(request, owner_id=credential.owner_id)
    flash_outcome(
        request,
        lambda: credential_scopes_narrow_to_used(credential=credential, actor=request.user),
        lambda kept: "The scopes were narrowed to what is used: " + ", ".join(kept) + ".",
    )
    return redirect(credential_path(credential) + "#usage-scopes")
