"""The audit log as CSV, for spreadsheets and auditors: the same filters as the page, a date range,
readable event names beside the dotted actions."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from portal.audit_text import action_label, details_text
from portal.forms import AuditFilterForm
from portal.infra.responses import no_store
from portal.infra.spreadsheet import csv_lines
from portal.outcomes import invalid_filter_response
from portal.selectors import audit_events_for
from portal.tenancy import authorized

COLUMNS = ["time (UTC)", "event", "action", "target", "actor", "IP address", "details"]


def _rows(events) -> Iterator[str]:
    # Every cell a spreadsheet would run as a formula (OWASP "CSV injection") is quoted as text.
    return csv_lines(
        COLUMNS,
        (
            [
                event.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
                action_label(event.action),
                event.action,
                event.target_label,
                event.actor_label,
                event.ip_address,
                details_text(event.extra),
            ]
            for event in events.iterator(chunk_size=500)
        ),
    )


@authorized("audit.read")
def audit_log_export(request: HttpRequest) -> HttpResponse:
    """Return the organisation's audit events matching the page's filters as a CSV download."""
    organization = request.organization
    form = AuditFilterForm(request.GET or None, organization=organization)
    refusal = invalid_filter_response(form)
    if refusal is not None:
        return refusal
    filters = form.filters()
    span = "-".join(str(d) for d in (filters.get("since"), filters.get("until")) if d) or "all"
    response = StreamingHttpResponse(
        _rows(audit_events_for(organization, **filters)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="audit-{organization.slug}-{span}.csv"'
    return no_store(response)
