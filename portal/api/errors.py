"""The REST API's error bodies: every refusal carries a machine-readable `code` beside `detail`."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
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
        elif isinstance(exc, Http404):  # Django's, from get_object_or_404 or the tenancy lookup
            response.data["code"] = exceptions.NotFound.default_code
        elif isinstance(exc, DjangoPermissionDenied):
            response.data["code"] = exceptions.PermissionDenied.default_code
    return response


class ApprovalRequired(exceptions.PermissionDenied):
    """403 `approval_required`: the organisation approves this first (a request, in the dashboard)."""

    default_code = "approval_required"


class Conflict(exceptions.APIException):
    """409: the object is not in a state that allows this (the service's refusal code, else `conflict`)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object is not in a state that allows this."
    default_code = "conflict"


def api_error(
    exc: DjangoValidationError,
    *,
    conflict: Collection[str] = (),
    forbidden: Collection[str] = (),
    detail_body: bool = False,
    fields: Mapping[str, str] | None = None,
) -> exceptions.APIException:
    """Turn a service's refusal (a Django ValidationError) into the REST API's answer.

    Field errors answer 400 by field, a service's field named as the request names it where
    `fields` says so (`{"overlap": "overlap_hours"}`); a refusal whose code is in `forbidden`
    answers 403 and one in `conflict` 409, each as `{"detail", "code"}`; any other answers 400, as
    `{"non_field_errors": [...]}`, or as `{"detail", "code"}` with `detail_body`.
    """
    if hasattr(exc, "error_dict"):
        renamed = fields or {}
        return exceptions.ValidationError(
            {renamed.get(name, name): messages for name, messages in exc.message_dict.items()}
        )
    detail = " ".join(exc.messages)
    if exc.code in forbidden:
        return exceptions.PermissionDenied(detail, code=exc.code)
    if exc.code in conflict:
        return Conflict(detail, code=exc.code)
    if detail_body:
        return exceptions.ValidationError({"detail": detail, "code": exc.code or "invalid"})
    return exceptions.ValidationError({"non_field_errors": exc.messages})
