"""Liveness/readiness probe."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from portal.infra.faults import RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database answers a query, 503 (quickly) when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001  any database failure means "not ready"
        logger.warning("healthz: database unavailable: %s", exc.__class__.__name__)
        connection.close_if_unusable_or_obsolete()
        response = JsonResponse({"status": "unavailable", "database": "down"}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)  # as every outage 503 (docs/operations.md)
        return response
    return JsonResponse({"status": "ok", "database": "ok"})
