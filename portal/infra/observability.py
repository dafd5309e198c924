"""Structured logs: a JSON formatter and one access line per request, with a request id and no secret."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject, empty

from portal.infra.log_filters import one_line, redact
from portal.principal import Principal

access_logger = logging.getLogger("portal.access")

#: Record attributes the JSON formatter copies when a log call sets them through `extra`.
JSON_FIELDS = (
    "method",
    "path",
    "status",
    "duration_ms",
    "credential_type",
    "credential_id",
    "client_ip",
)
#: URL keyword arguments that carry a secret (invitation and password-reset tokens): never logged.
SECRET_URL_KWARGS = frozenset({"token", "key", "secret", "uidb64", "uidb36"})

_credential: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "portal_credential", default=None
)


def note_credential(credential_type: str, credential_id: str) -> None:
    """Record which (non-secret) credential the current request authenticated with, for the access log."""
    _credential.set((credential_type, credential_id))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and the access fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for field in JSON_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                # Fields come from the request (a path, an id): masked like the message.
                data[field] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str, ensure_ascii=False)


#: Stands in for a secret URL kwarg while the path is rebuilt: letters only, so every pattern takes it,
#: and in capitals, which no route of the portal spells.
_SECRET_PLACEHOLDER = "REDACTED"


def loggable_path(request: HttpRequest) -> str:
    """Return the request path for a log line: no query string, secret URL segments and any
    credential a client put in it masked, control characters escaped (one line stays one)."""
    path = request.path
    match = getattr(request, "resolver_match", None)
    if match is not None and not SECRET_URL_KWARGS.isdisjoint(match.kwargs):
        # Rebuilt from the matched pattern, not masked value by value in the path: one value may hold
        # another (a reset link's user id inside its key), and masking the shorter first would leave
        # the longer one unmatched, and written out.
        kwargs = {
            name: _SECRET_PLACEHOLDER if name in SECRET_URL_KWARGS else value
            for name, value in match.kwargs.items()
        }
        try:
            path = reverse(match.view_name, kwargs=kwargs).replace(_SECRET_PLACEHOLDER, "[redacted]")
        except NoReverseMatch:
            path = "/" + match.route  # the pattern that matched: it holds no value at all
    return one_line(redact(path))


def _credential_of(request: HttpRequest) -> tuple[str | None, str | None]:
    auth = getattr(request, "auth", None)
    if isinstance(auth, Principal):
        return auth.credential_type, auth.credential_id
    noted = _credential.get()
    if noted is not None:
        return noted
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        # Only a user some code already loaded: the access log must not cost a query.
        user = None if user._wrapped is empty else user._wrapped
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None):
        return "session", str(user.pk)
    return None, None


class AccessLogMiddleware:
    """Log one line per request: method, path (no query), status, duration, credential; never a secret."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        token = _credential.set(None)
        try:
            response = self.get_response(request)
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            credential_type, credential_id = _credential_of(request)
        finally:
            _credential.reset(token)
        path = loggable_path(request)
        context = getattr(request, "portal_context", None)
        credential = f" {credential_type}:{credential_id}" if credential_type else ""
        access_logger.info(
            "%s %s %s %.1fms%s",
            request.method,
            path,
            response.status_code,
            duration_ms,
            credential,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "credential_type": credential_type,
                "credential_id": credential_id,
                "client_ip": context.ip if context else None,
            },
        )
        return response
