"""Request context (request id, client IP, user agent) for audit events and logs."""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.http import HttpRequest, HttpResponse

from portal.infra.net import client_ip


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    ip: str | None
    user_agent: str
    #: The path requested (no query), for records that name an endpoint (recent denials).
    path: str = ""
    #: Headers every answer to this request carries (a limited credential's RateLimit fields).
    response_headers: dict[str, str] = field(default_factory=dict)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "portal_request", default=None
)


def current_request_context() -> RequestContext | None:
    """Return the context of the request being served, if any."""
    return _current.get()


@contextmanager
def request_context_restored(context: RequestContext) -> Iterator[None]:
    """Make `context` current again for a while (work deferred until after the response)."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


#: Unicode's control characters (category Cc): C0, DEL and C1.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _sanitised_user_agent(request: HttpRequest) -> str:
    """Return the User-Agent with each control character replaced by U+FFFD, and keep it so in META.

    PostgreSQL refuses NUL in text (a 500 when the session or an audit row is saved), and a line
    break or an escape sequence has no business in a log line or an admin page. Later layers
    (allauth's session list, audit rows) read META, so the value is mended there, once.
    """
    user_agent = request.META.get("HTTP_USER_AGENT", "")
    # Every request passes here, machine ones included: str.isprintable() is one C-level scan, true
    # for any ordinary User-Agent (it is false for every control character, and for a few other
    # characters, which the substitution then leaves alone).
    if not user_agent.isprintable():
        user_agent = _CONTROL_CHARACTERS.sub("\ufffd", user_agent)
        request.META["HTTP_USER_AGENT"] = user_agent
    return user_agent


class RequestContextMiddleware:
    """Give each request an id (echoed as `X-Request-ID`) and remember who sent it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        context = RequestContext(
            request_id=secrets.token_hex(8),
            ip=client_ip(request),
            user_agent=_sanitised_user_agent(request)[:255],
            # Whole: whoever keeps it masks what a client put in it first (a key pasted where an id
            # goes), then shortens it (credentials.insight.recorder).
            path=request.path,
        )
        request.portal_context = context
        token = _current.set(context)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response["X-Request-ID"] = context.request_id
        for name, value in context.response_headers.items():
            response[name] = value
        return response


class RequestIdLogFilter(logging.Filter):
    """Add `request_id` to every log record ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        if context is None:
            # Django logs a refused request ("Not Found: /…") after the middleware chain has
            # returned, when the context is gone; the record carries the request, and its context.
            context = getattr(getattr(record, "request", None), "portal_context", None)
        record.request_id = context.request_id if context else "-"
        return True
