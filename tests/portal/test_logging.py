"""Development-server output: every log line once, and no traceback for a refused request.

Each check runs in a fresh `DEBUG=1` process, so the project's LOGGING is what writes to stderr
(pytest's own log capture is not in the way). The records are made by `log_response`, the
function Django's request handler calls for every 4xx/5xx answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import logging, django
django.setup()
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseForbidden, HttpResponseServerError
from django.test import RequestFactory
from django.utils.log import log_response

request = RequestFactory().get("/orgs/acme/members/invite/")
log_response("Forbidden (Permission denied): %s", request.path, response=HttpResponseForbidden(),
             request=request, exception=PermissionDenied("Only owners and admins can invite."))
logging.getLogger("django.server").warning('"GET /orgs/acme/members/invite/ HTTP/1.1" 403 10')
logging.getLogger("django.security.csrf").warning("Forbidden (CSRF cookie not set.): /accounts/login/")
try:
    raise RuntimeError("marker-boom")
except RuntimeError as exc:
    log_response("Internal Server Error: %s", "/boom", response=HttpResponseServerError(),
                 request=RequestFactory().get("/boom"), exception=exc)
"""


def _dev_server_stderr() -> str:
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "portal.settings"}
    env.pop("PORTAL_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_a_403_is_one_line_without_a_traceback():
    err = _dev_server_stderr()
    assert err.count("Forbidden (Permission denied): /orgs/acme/members/invite/") == 1, err
    assert "PermissionDenied" not in err and "Only owners and admins" not in err, err


def test_every_django_line_is_printed_once():
    err = _dev_server_stderr()
    assert err.count("Forbidden (CSRF cookie not set.)") == 1, err
    # runserver's request line repeats portal.access's line, which carries the request id.
    assert '"GET /orgs/acme/members/invite/ HTTP/1.1" 403' not in err, err


def test_a_500_keeps_its_traceback_once():
    err = _dev_server_stderr()
    assert err.count("Internal Server Error: /boom") == 1, err
    assert err.count("Traceback") == 1 and "marker-boom" in err, err
