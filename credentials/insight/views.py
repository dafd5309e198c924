"""Usage on the dashboard: a credential's "Narrow to what is used" and CSV download; the organisation's."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET

from credentials.governance.inventory_usage import USAGE_DAYS, usage_window_start
from credentials.governance.registry import credential_path, kind_of
from credentials.governance.views import credential_or_404
from credentials.insight.export import usage_csv, usage_csv_filename
from credentials.insight.page import RANGES, chosen_range
from credentials.insight.selectors import scope_suggestion, usage_series
from credentials.insight.services import credential_scopes_narrow_to_used
from credentials.usage import chart_window, rollup_before_reading
from portal.confirm import confirm_page
from portal.outcomes import flash_outcome
from portal.tenancy import authorized, check


def _narrowable(request: HttpRequest, kind: str, **kwargs):
    """Return the credential if the member may narrow its scopes: 404 for another organisation's, else 403."""
    credential = credential_or_404(request, kind, kwargs)
    check(request, owner_id=credential.owner_id)
    return credential


def _narrowing(_request: HttpRequest, credential) -> str:
    """Say which scopes a narrowing removes (the service decides again when it is confirmed)."""
    kind = kind_of(credential)
    suggestion = scope_suggestion(
        organization_id=credential.organization_id,
        kind=kind.key,
        credential_id=getattr(credential, kind.ref_attr),
        scopes=sorted(kind.scopes_of(credential)),
    )
    unused = ", ".join(suggestion["unused"]) or "no scope"
    return (
        f"Removed at once: {unused} (no request needed {'it' if len(suggestion['unused']) == 1 else 'them'} "
        f"in the last {suggestion['days']} days). Adding a scope back may need an approval."
    )


@authorized("{kind}.scopes")
@confirm_page(
    lambda _request, credential: f"Narrow “{credential.name}” to what is used?",
    _narrowing,
    "Narrow to what is used",
    target=_narrowable,
    back=lambda _request, credential: credential_path(credential) + "#usage-scopes",
)
def narrow_to_used(request: HttpRequest, kind: str, **kwargs) -> HttpResponse:
    """Remove the scopes no request needed in 30 days (no approval needed, audited); a GET asks first."""
    credential = _narrowable(request, kind, **kwargs)
    flash_outcome(
        request,
        lambda: credential_scopes_narrow_to_used(credential=credential, actor=request.user),
        lambda kept: "The scopes were narrowed to what is used: " + ", ".join(kept) + ".",
    )
    return redirect(credential_path(credential) + "#usage-scopes")


@require_GET
@authorized("usage.read")
def usage_csv_download(request: HttpRequest, kind: str, **kwargs) -> HttpResponse:
    """Download the usage of the period the page shows (`?usage=24h|7d|90d`) as CSV, a row per bar.

    Another organisation's credential is 404; the columns are those of the usage API's CSV.
    """
    rollup_before_reading()
    credential = credential_or_404(request, kind, kwargs)
    check(request, f"{kind}.view", owner_id=credential.owner_id)
    chosen = chosen_range(request)
    hours, granularity = RANGES[chosen]
    now = timezone.now()
    since, _step, _periods = chart_window(hours=hours, granularity=granularity, now=now)
    credential_kind = kind_of(credential)
    ref = getattr(credential, credential_kind.ref_attr)
    series = usage_series(
        request.organization,
        {ref: {"kind": credential_kind.key, "name": credential.name}},
        granularity=granularity,
        since=since,
        until=now,
    )
    response = HttpResponse(usage_csv(series), content_type="text/csv; charset=utf-8")
    name = usage_csv_filename(request.organization.slug, ref, chosen, now)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@authorized("usage.read")
def organization_usage_csv(request: HttpRequest) -> HttpResponse:
    """Download every credential's daily usage over the overview's 30 days as CSV (a row per day with use).

    The same days as the overview's sparklines and the inventory's "Requests (30 d)"; a bounded
    number of queries whatever the number of credentials.
    """
    rollup_before_reading()
    now = timezone.now()
    series = usage_series(
        request.organization, None, granularity="day", since=usage_window_start(now), until=now
    )
    response = HttpResponse(usage_csv(series), content_type="text/csv; charset=utf-8")
    name = usage_csv_filename(request.organization.slug, f"{USAGE_DAYS}d", now)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
