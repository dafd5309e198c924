"""The REST API's error bodies: every refusal carries a machine-readable `code` beside `detail`."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from portal.authz import Refused


def exception_handler(exc, context):
    """Answer like DRF, with `code` added to every `{"detail": …}` body (REST_FRAMEWORK setting).

    `portal.authz.Refused` answers 403 with its own code (`not_manager`, `four_eyes`, …);
    DRF's own refusals keep theirs (`not_authenticated`, `permission_denied`, `throttled`, …).
    """
    if isinstance(exc, Refused):
        exc = exceptions.PermissionDenied(exc.detail, code=exc.code)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(response.data, dict):
        return response
    if "detail" in response.data and "code" not in response.data:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        if isinstance(codes, str):
            response.data["code"] = codes
        elif isinstance(exc, exceptions.APIException):
            response.data["code"] = exc.default_code
    return response


class ApprovalRequired(exceptions.PermissionDenied):
    """403 `approval_required`: the organisation approves this first (a request, in the dashboard)."""

    default_code = "approval_required"
