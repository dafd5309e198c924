"""What reaches the log: no credential in any field or traceback, no forged line, a request id on
every line and every answer, a 4xx as one warning line."""

from __future__ import annotations

import io
import logging
import re
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.test import Client

from portal.infra.log_filters import PlainFormatter, RedactCredentials
from portal.infra.observability import JsonFormatter

pytestmark = pytest.mark.django_db


@contextmanager
def console(fmt: str = "plain"):
    """Capture what the real console handler (settings.LOGGING, its filters) writes, in `fmt`."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and any(isinstance(f, RedactCredentials) for f in h.filters)
    )
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    old_formatter = handler.formatter
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else PlainFormatter(settings.LOGGING["formatters"]["plain"]["format"])
    )
    try:
        yield stream
    finally:
        handler.setStream(old_stream)
        handler.setFormatter(old_formatter)


def _secret_part(key: str) -> str:
    # ipk_live_<12-char key id><secret…>: the part after the public id must never be logged.
    return key[len("ipk_live_") + 12 :]


def test_json_log_does_not_carry_an_api_key_put_in_a_url(make_key):
    """PORTAL_LOG_FORMAT=json (the production example): the access line's `path` field is unredacted."""
    _row, key = make_key()
    client = Client(raise_request_exception=False)
    with console("json") as out:
        client.get(f"/api/v1/whoami/{key}")
        client.get(f"/oauth/token/{key}")
    text = out.getvalue()
    assert "portal.access" in text
    assert _secret_part(key) not in text, text


def test_json_log_does_not_carry_a_jwt_put_in_a_url(make_key):
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzM2NyM3QtcGF5bG9hZCJ9.c2lnbmF0dXJlLXNlY3JldA"
    with console("json") as out:
        Client(raise_request_exception=False).get(f"/api/v1/whoami/{jwt}")
    assert "c2lnbmF0dXJlLXNlY3JldA" not in out.getvalue(), out.getvalue()


@pytest.mark.urls("tests.security.urls_boom")
def test_a_logged_traceback_is_redacted_too(make_key):
    """RedactCredentials masks msg/args only; the traceback text (exc_info) is written as is."""
    _row, key = make_key()
    with console("plain") as out:
        response = Client(raise_request_exception=False).get(f"/boom/?api_key={key}")
    assert response.status_code == 500
    text = out.getvalue()
    assert "Traceback" in text
    assert _secret_part(key) not in text, text


def test_plain_access_log_cannot_be_split_by_an_encoded_newline():
    """A %0A in the path becomes a second, forged log line (the default plain format)."""
    forged = "2026-01-01 00:00:00,000 INFO portal.access [req=0000000000000000] POST /oauth/token 200 1.0ms"
    with console("plain") as out:
        Client(raise_request_exception=False).get("/x%0A" + forged.replace(" ", "%20"))
    lines = out.getvalue().splitlines()
    assert not any(line.startswith("2026-01-01 00:00:00,000") for line in lines), lines


def test_refusal_log_lines_carry_the_request_id():
    """django.request's "Unauthorized: /…" / "Not Found: /…" lines are written as [req=-]."""
    with console("plain") as out:
        response = Client(raise_request_exception=False).get("/api/v1/whoami")
    assert response.status_code == 401
    lines = [line for line in out.getvalue().splitlines() if " django.request " in line]
    assert lines, out.getvalue()
    assert all(f"[req={response['X-Request-ID']}]" in line for line in lines), lines


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"path": "/api/v1/whoami", "HTTP_HOST": "evil.example"},
        {"path": "/accounts/login/", "HTTP_HOST": "evil.example"},
    ],
    ids=["bad-host-machine", "bad-host-browser"],
)
def test_a_client_error_is_one_line_without_a_traceback(request_kwargs):
    """docs/operations.md: "a refused request (4xx) is one line without a traceback". django.security.*
    (DisallowedHost, TooManyFieldsSent…) logs at ERROR with the whole traceback, for any anonymous client."""
    with console("plain") as out:
        response = Client(raise_request_exception=False).get(**request_kwargs)
    assert response.status_code == 400
    text = out.getvalue()
    assert "Traceback" not in text, text
    assert " ERROR " not in text, text


def test_an_oversized_body_refusal_is_access_logged_with_a_request_id():
    """RequestBoundsMiddleware answers before RequestContext/AccessLog: no access line, no X-Request-ID."""
    with console("plain") as out:
        response = Client(raise_request_exception=False).post(
            "/oauth/token",
            data="grant_type=client_credentials",
            content_type="application/x-www-form-urlencoded",
            CONTENT_LENGTH=str(10 * 1024 * 1024),
        )
    assert response.status_code == 413
    assert response.has_header("X-Request-ID")
    assert re.search(r"portal\.access .* POST /oauth/token 413", out.getvalue()), out.getvalue()
